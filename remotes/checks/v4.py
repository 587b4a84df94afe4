"""Bulk Data 4.0.0-ballot checks (v4 digest §7.A), run when the server's
CapabilityStatement declares an `export-v4` operation (as bulkops does beside `export`),
skipped otherwise.

One small export (`_type=Patient`, organised by Patient, with partial manifests and
`Prefer: separate-export-status`) exercises the v4 request forms; its manifest pages
and first file are checked against the ballot's rules, and the job is deleted again.
"""

from __future__ import annotations

import json
import time

from bulkops.outbound import same_origin
from exports.bulk_client import HttpResult
from remotes.checks.base import Facts, Recorder, is_absolute, media_type
from remotes.checks.kickoff import POLL_TIMEOUT, _headers, _is_outcome, _wait_seconds

V4_PARAMETERS = {
    "resourceType": "Parameters",
    "parameter": [
        {"name": "_type", "valueString": "Patient"},
        {"name": "organizeOutputBy", "valueString": "Patient"},
        {"name": "allowPartialManifests", "valueBoolean": True},
    ],
}
SEPARATE = "respond-async, separate-export-status"
NON_ARRAY = ("manifestType", "transactionTime", "requiresAccessToken", "outputFormat",
             "outputOrganizedBy", "outputOrganizedByDetail")  # fmt: skip
MAX_PAGES = 20


def v4_url(rec: Recorder) -> str:
    group = rec.target.group_id
    return f"{rec.target.base_url}{f'/Group/{group}' if group else '/Patient'}/$export-v4"


def v4_get_refused(rec: Recorder, facts: Facts) -> str:
    facts.need("export_v4")
    facts.need("access_token")
    result = rec.http("GET", v4_url(rec), headers=_headers(facts))
    rec.excerpt(f"answer ({result.status})", result.body)
    if result.status == 202:
        location = result.headers.get("Content-Location", "")
        if same_origin(location, rec.target.base_url):
            rec.http("DELETE", location, headers=_headers(facts))
        rec.fail("A GET kick-off of $export-v4 was accepted; v4 kick-offs are POST only.")
        return ""
    if not 400 <= result.status < 500 or not _is_outcome(result):
        rec.fail(f"The GET was refused with {result.status} but without an OperationOutcome.")
    return f"A GET kick-off of $export-v4 was refused with {result.status}."


def v4_export(rec: Recorder, facts: Facts) -> str:
    facts.need("export_v4")
    facts.need("access_token")
    body = json.dumps(V4_PARAMETERS).encode()
    headers = _headers(facts, Prefer=SEPARATE, **{"Content-Type": "application/fhir+json"})
    result = rec.http("POST", v4_url(rec), headers=headers, data=body)
    rec.excerpt(f"kick-off answer ({result.status})", result.body)
    location = result.headers.get("Content-Location", "")
    if result.status != 202 or not is_absolute(location):
        rec.fail(f"The POST kick-off was answered {result.status} without a status URL.")
        return ""
    if not same_origin(location, rec.target.base_url):
        rec.fail(f"The status URL {location} is not on the FHIR server's origin.")
        return ""
    separate = "separate-export-status" in result.headers.get("Preference-Applied", "")
    if not separate:
        rec.note("separate-export-status was not applied (optional).")
    try:
        done = _poll(rec, facts, location, separate=separate)
        if done is not None:
            _check_pages(rec, facts, done)
    finally:
        rec.http("DELETE", location, headers=_headers(facts))
    return (
        "POST kick-off accepted; the manifest pages have the v4 shape, a single next link, "
        "and files of Patient blocks."
    )


def _poll(rec: Recorder, facts: Facts, status_url: str, *, separate: bool) -> dict | None:
    """Poll to completion; with separate-export-status every answer is 200 and the job's
    status is X-Export-Status. Partial manifests seen on the way must stay as first shown."""
    deadline, first_page = time.monotonic() + POLL_TIMEOUT, None
    while time.monotonic() < deadline:
        result = rec.http("GET", status_url, headers=_headers(facts, Accept="application/json"))
        job_status = _job_status(rec, result, separate=separate)
        if job_status == 200:
            manifest = _json(rec, result)
            if first_page is not None and manifest is not None:
                _same_but_link(rec, first_page, manifest)
            return manifest
        if job_status != 202:
            rec.excerpt(f"status answer ({result.status})", result.body)
            rec.fail(f"A poll answered {result.status}; the export did not complete.")
            return None
        if result.body and first_page is None:
            first_page = _json(rec, result)
        elif result.body and first_page is not None and (page := _json(rec, result)):
            _same_but_link(rec, first_page, page)
        time.sleep(_wait_seconds(rec, result, 1.0))
    rec.fail(f"The export did not complete within {POLL_TIMEOUT:.0f} s.")
    return None


def _job_status(rec: Recorder, result: HttpResult, *, separate: bool) -> int:
    if not separate or result.status != 200:
        return result.status
    header = result.headers.get("X-Export-Status", "")
    if not header[:3].isdigit():
        rec.fail("A 200 poll under separate-export-status had no X-Export-Status.")
        return 0
    return int(header[:3])


def _json(rec: Recorder, result: HttpResult) -> dict | None:
    if media_type(result.headers) != "application/json":
        rec.fail(f"A manifest is served as {media_type(result.headers) or 'nothing'}.")
    try:
        value = result.json()
    except ValueError:
        value = None
    if not isinstance(value, dict):
        rec.fail("A manifest answer is not a JSON object.")
        return None
    return value


def _same_but_link(rec: Recorder, first: dict, later: dict) -> None:
    """A partial manifest SHALL NOT change once returned, except to add `link`."""
    if {k: v for k, v in first.items() if k != "link"} != {
        k: v for k, v in later.items() if k != "link"
    }:
        rec.fail("A partial manifest changed after it was returned.")


def _check_pages(rec: Recorder, facts: Facts, first: dict) -> None:
    pages, page = [first], first
    while "link" in page and len(pages) < MAX_PAGES:
        links = page["link"]
        if not (
            isinstance(links, list)
            and len(links) == 1
            and isinstance(links[0], dict)
            and links[0].get("relation") == "next"
        ):
            rec.fail("A manifest's link is not one item with relation next.")
            return
        result = rec.http("GET", links[0].get("url", ""), headers=_headers(facts))
        if result.status != 200 or (page := _json(rec, result)) is None:
            rec.fail(f"A linked manifest page answered {result.status}.")
            return
        pages.append(page)
    for page in pages:
        _check_manifest(rec, page)
        if {k: page.get(k) for k in NON_ARRAY} != {k: first.get(k) for k in NON_ARRAY}:
            rec.fail("A linked page does not repeat the first page's non-array fields.")
    outputs = [item for page in pages for item in items(page, "output")]
    if outputs:
        _check_first_block(rec, facts, outputs[0])


def _check_manifest(rec: Recorder, manifest: dict) -> None:
    for field in ("transactionTime", "requiresAccessToken"):
        if field not in manifest:
            rec.fail(f"A manifest has no {field}.")
    for field in ("request", "error"):
        if field in manifest:
            rec.fail(f"A v4 manifest has {field!r}, which 4.0.0 removed or renamed.")
    if "extension" in manifest and not isinstance(manifest["extension"], list):
        rec.fail("extension is not an array of Extensions.")
    if "manifestType" not in manifest:
        rec.warn("The manifest has no manifestType (recommended; mandatory in future).")
    organized = manifest.get("outputOrganizedBy")
    if organized != "Patient":
        rec.warn("The output was not organised by Patient (organizeOutputBy is optional).")
    for item in items(manifest, "output"):
        if organized and "type" in item:
            rec.fail("output[].type is set although outputOrganizedBy is.")
        if not is_absolute(item.get("url")):
            rec.fail("An output url is not absolute.")


def items(manifest: dict, name: str) -> list[dict]:
    """The object items of a manifest array (untrusted: anything else is left out)."""
    listed = manifest.get(name)
    return [item for item in listed if isinstance(item, dict)] if isinstance(listed, list) else []


def _check_first_block(rec: Recorder, facts: Facts, item: dict) -> None:
    headers = _headers(facts, Accept="application/fhir+ndjson", Prefer="")
    if not is_absolute(item.get("url")) or not same_origin(item["url"], rec.target.base_url):
        return  # only the server's own files get our token
    result = rec.http("GET", item["url"], headers=headers, max_bytes=64 * 1024)
    line = result.body.split(b"\n", 1)[0]
    try:
        first = json.loads(line)
    except ValueError:
        rec.fail("The first output file does not start with a JSON line.")
        return
    parameters = first.get("parameter") if isinstance(first, dict) else None
    header = parameters[0] if isinstance(parameters, list) and parameters else {}
    if (
        not isinstance(first, dict)
        or first.get("resourceType") != "Parameters"
        or not (isinstance(header, dict) and header.get("name") == "header")
    ):
        rec.fail("The first line of an organised file is not a Parameters header.")
