"""Bulk Data 4.0.0-ballot checks (v4 digest §7.A), run when the server's
CapabilityStatement declares an `export-v4` operation (as bulkops does beside `export`),
skipped otherwise.

One small export (`_type=Patient`, organised by Patient, with partial manifests and
`Prefer: separate-export-status`) exercises the v4 request forms (v4-kickoff-accepted);
what it saw is judged by the checks after it: its manifest pages (v4-manifest-pages),
the block layout of its first file (v4-organized-output) and how polls answered under
separate-export-status (v4-separate-export-status). The job is deleted again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from bulkops import untrusted_json
from bulkops.outbound import same_origin
from exports.bulk_client import HttpResult, parameters_v4
from remotes.blocks import BlockError, BlockReader
from remotes.checks.base import Facts, Recorder, is_absolute, media_type
from remotes.checks.kickoff import POLL_TIMEOUT, _headers, _is_outcome, _wait_seconds
from remotes.remote_manifest import NON_ARRAY, ManifestError, next_url

V4_PAIRS = [
    ("_type", "Patient"),
    ("organizeOutputBy", "Patient"),
    ("allowPartialManifests", "true"),
]
SEPARATE = "respond-async, separate-export-status"
MAX_PAGES = 20
FILE_HEAD_BYTES = 64 * 1024


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


@dataclass
class V4Run:
    """What the v4 kick-off check saw, for the checks that judge it: the poll answers
    (status and X-Export-Status), the partial manifests, the manifest pages and the
    start of the first output file."""

    separate: bool  # Preference-Applied named separate-export-status
    polls: list[tuple[int, str]] = field(default_factory=list)
    partials: list[dict] = field(default_factory=list)
    pages: list[dict] = field(default_factory=list)
    paging_problem: str = ""
    first_file: bytes = b""
    first_file_truncated: bool = False


def v4_kickoff(rec: Recorder, facts: Facts) -> str:
    facts.need("export_v4")
    facts.need("access_token")
    body = json.dumps(parameters_v4(V4_PAIRS)).encode()
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
    run = V4Run(separate="separate-export-status" in result.headers.get("Preference-Applied", ""))
    try:
        done = _poll(rec, facts, location, run)
        if done is not None:
            _read_pages(rec, facts, done, run)
            facts.v4_run = run
    finally:
        rec.http("DELETE", location, headers=_headers(facts))
    return "The POST Parameters kick-off (one value per parameter) was accepted and completed."


def _poll(rec: Recorder, facts: Facts, status_url: str, run: V4Run) -> dict | None:
    """Poll to completion; with separate-export-status the job's status is the
    X-Export-Status of a 200. Every answer and partial manifest is kept for later checks."""
    deadline = time.monotonic() + POLL_TIMEOUT
    while time.monotonic() < deadline:
        result = rec.http("GET", status_url, headers=_headers(facts, Accept="application/json"))
        exported = result.headers.get("X-Export-Status", "")
        run.polls.append((result.status, exported))
        job_status = int(exported[:3]) if run.separate and exported[:3].isdigit() else result.status
        if job_status == 200:
            return _json(rec, result)
        if job_status != 202:
            rec.excerpt(f"status answer ({result.status})", result.body)
            rec.fail(f"A poll answered {result.status}; the export did not complete.")
            return None
        if result.body and (page := _json(rec, result)) is not None:
            run.partials.append(page)
        time.sleep(_wait_seconds(rec, result, 1.0))
    rec.fail(f"The export did not complete within {POLL_TIMEOUT:.0f} s.")
    return None


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


def _read_pages(rec: Recorder, facts: Facts, first: dict, run: V4Run) -> None:
    """Follow `link` next (judged by v4-manifest-pages) and fetch the start of the first
    output file (judged by v4-organized-output) before the job is deleted."""
    run.pages = [first]
    page = first
    while "link" in page and len(run.pages) < MAX_PAGES:
        try:
            url = next_url(page)
        except ManifestError as error:
            run.paging_problem = f"{str(error).capitalize()}."
            break
        result = rec.http("GET", url, headers=_headers(facts, Accept="application/json"))
        if result.status != 200 or (page := _json(rec, result)) is None:
            run.paging_problem = f"A linked manifest page answered {result.status}."
            break
        run.pages.append(page)
    outputs = [item for page in run.pages for item in items(page, "output")]
    url = outputs[0].get("url") if outputs else None
    if is_absolute(url) and same_origin(url, rec.target.base_url):  # our token goes only there
        headers = _headers(facts, Accept="application/fhir+ndjson", Prefer="")
        result = rec.http("GET", url, headers=headers, max_bytes=FILE_HEAD_BYTES)
        run.first_file, run.first_file_truncated = result.body, result.truncated


def v4_manifest_pages(rec: Recorder, facts: Facts) -> str:
    run: V4Run = facts.need("v4_run")
    for partial in run.partials:
        if _without_link(partial) != _without_link(run.partials[0]):
            rec.fail("A partial manifest changed after it was returned.")
            break
    if run.partials and _without_link(run.partials[0]) != _without_link(run.pages[0]):
        rec.fail("The complete manifest's first page differs from the partial one shown.")
    if run.paging_problem:
        rec.fail(run.paging_problem)
    for number, page in enumerate(run.pages, start=1):
        rec.excerpt(f"manifest page {number}", json.dumps(page).encode())
        _check_manifest(rec, page)
        if {k: page.get(k) for k in NON_ARRAY} != {k: run.pages[0].get(k) for k in NON_ARRAY}:
            rec.fail(f"Page {number} does not repeat the first page's non-array fields.")
    if not run.partials:
        rec.note("No partial manifest was shown while the export ran (allowed).")
    return (
        f"{len(run.pages)} manifest page(s) in the v4 model, linked by a single next link; "
        f"{len(run.partials)} partial manifest(s) stayed as first shown."
    )


def _without_link(page: dict) -> dict:
    return {name: value for name, value in page.items() if name != "link"}


def _check_manifest(rec: Recorder, manifest: dict) -> None:
    for field_name in ("transactionTime", "requiresAccessToken"):
        if field_name not in manifest:
            rec.fail(f"A manifest has no {field_name}.")
    for field_name in ("request", "error"):
        if field_name in manifest:
            rec.fail(f"A v4 manifest has {field_name!r}, which 4.0.0 removed or renamed.")
    if "extension" in manifest and not isinstance(manifest["extension"], list):
        rec.fail("extension is not an array of Extensions.")
    if "manifestType" not in manifest:
        rec.warn("The manifest has no manifestType (recommended; mandatory in future).")
    organized = manifest.get("outputOrganizedBy")
    for item in items(manifest, "output"):
        if organized and "type" in item:
            rec.fail("output[].type is set although outputOrganizedBy is.")
        if not is_absolute(item.get("url")):
            rec.fail("An output url is not absolute.")


def items(manifest: dict, name: str) -> list[dict]:
    """The object items of a manifest array (untrusted: anything else is left out)."""
    listed = manifest.get(name)
    return [item for item in listed if isinstance(item, dict)] if isinstance(listed, list) else []


def v4_organized_output(rec: Recorder, facts: Facts) -> str:
    run: V4Run = facts.need("v4_run")
    organized = run.pages[0].get("outputOrganizedBy")
    if organized != "Patient":
        rec.warn("The output was not organised by Patient (organizeOutputBy is optional).")
        return ""
    if not run.first_file:
        rec.warn("No output file on the server's origin was listed to read.")
        return ""
    lines = run.first_file.split(b"\n")
    if run.first_file_truncated:
        lines = lines[:-1]  # cut off mid-line
    rec.excerpt("first output file (start)", b"\n".join(lines[:4]))
    reader, number = BlockReader("Patient"), 0
    try:
        for number, line in enumerate((line for line in lines if line.strip()), start=1):
            resource = untrusted_json.loads(line)
            if not isinstance(resource, dict):
                raise BlockError(f"line {number} is not a JSON object")
            reader.line(resource, number)
        if not run.first_file_truncated:
            reader.finish(number)
    except (BlockError, ValueError) as error:
        rec.fail(f"The first output file breaks the block layout: {error}.")
        return ""
    return f"The first output file holds {reader.blocks} block(s), each led by its header line."


def v4_separate_status(rec: Recorder, facts: Facts) -> str:
    run: V4Run = facts.need("v4_run")
    if not run.separate:
        return (
            "Prefer: separate-export-status is not offered (optional): the kick-off "
            "answered no Preference-Applied naming it."
        )
    for status, exported in run.polls:
        if status != 200 or not exported[:3].isdigit():
            rec.fail(
                f"Under separate-export-status a poll answered {status} with "
                f"X-Export-Status {exported or 'missing'}; every poll is 200 with the job's "
                "status in X-Export-Status."
            )
            break
    return f"Honoured: {len(run.polls)} poll(s) answered 200 with X-Export-Status."
