"""Manifest and file checks (spec §2.3, §4; checklist 34–40, 45–47): the manifest's
fields, every output and error file parsing as NDJSON of its declared type with the
declared count, requiresAccessToken honoured, the Expires header."""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime
from typing import Any

from bulkops import untrusted_json
from bulkops.outbound import same_origin
from remotes.checks.base import Facts, Recorder, Skip, is_absolute, media_type

MAX_FILES = 10  # output (and error) files downloaded by a check; the export is small anyway
MAX_FILE_BYTES = 8 * 1024 * 1024  # read of each; a larger file is checked in its first part
MAX_PROBLEMS = 3  # per file, so one broken file does not flood the summary
OUTLINE_KEPT = ("resourceType", "id")  # the only values a file's evidence shows


def manifest_fields(rec: Recorder, facts: Facts) -> str:
    manifest = facts.need("manifest")
    if not isinstance(manifest.get("transactionTime"), str):
        rec.fail("transactionTime is missing.")
    if not isinstance(manifest.get("request"), str):
        rec.fail("request is missing.")
    if not isinstance(manifest.get("requiresAccessToken"), bool):
        rec.fail("requiresAccessToken is missing or not a boolean.")
    for kind in ("output", "error"):
        if not isinstance(manifest.get(kind), list):
            rec.fail(f"{kind}[] is missing.")
    for kind in ("output", "error", "deleted"):
        for index, item in enumerate(_items(manifest, kind)):
            _check_item(rec, f"{kind}[{index}]", item)
    return (
        f"All required fields are there; {len(_items(manifest, 'output'))} output file(s) listed."
    )


def _items(manifest: dict[str, Any], kind: str) -> list[Any]:
    value = manifest.get(kind)
    return value if isinstance(value, list) else []


def _check_item(rec: Recorder, where: str, item: Any) -> None:
    if not isinstance(item, dict) or not isinstance(item.get("type"), str):
        rec.fail(f"{where} has no type.")
    elif not is_absolute(item.get("url")):
        rec.fail(f"{where} has no absolute url.")
    elif "count" in item and not isinstance(item["count"], int | float):
        rec.fail(f"{where} has a count that is not a number.")


def _downloadable(manifest: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The first MAX_FILES items of `kind` with a type and an absolute url."""
    items = [
        item
        for item in _items(manifest, kind)
        if isinstance(item, dict) and isinstance(item.get("type"), str)
        and is_absolute(item.get("url"))
    ]  # fmt: skip
    return items[:MAX_FILES]


def _outputs(facts: Facts) -> list[dict[str, Any]]:
    outputs = _downloadable(facts.need("manifest"), "output")
    if not outputs:
        raise Skip("the manifest lists no downloadable output files.")
    return outputs


def _file_headers(rec: Recorder, facts: Facts, url: str, *, token: bool) -> dict[str, str]:
    """Our token goes only to the server's own origin (scheme, host and port), never to
    presigned URLs elsewhere nor over plain http to an https server's host."""
    headers = {"Accept": "application/fhir+ndjson"}
    if token and same_origin(url, rec.target.base_url) and facts.access_token:
        headers["Authorization"] = f"Bearer {facts.access_token}"
    return headers


def ndjson_files(rec: Recorder, facts: Facts) -> str:
    """Download the output files and the error files (NDJSON of OperationOutcomes,
    spec §2.3): every line a resource of the item's type; counts for output_counts."""
    manifest = facts.need("manifest")
    token = bool(manifest.get("requiresAccessToken"))
    outputs, errors = _outputs(facts), _downloadable(manifest, "error")
    for kind, items in (("output", outputs), ("error", errors)):
        for index, item in enumerate(items):
            _check_file(rec, facts, kind, index, item, token=token)
    return (
        f"{len(facts.files)} file(s) downloaded ({len(outputs)} output, {len(errors)} error); "
        "every line is a resource of the file's type."
    )


def _check_file(
    rec: Recorder, facts: Facts, kind: str, index: int, item: dict[str, Any], *, token: bool
) -> None:
    """Download one file of the manifest's `kind` list and check its lines."""
    label = item["type"] if kind == "output" else f"{item['type']} error"
    headers = _file_headers(rec, facts, item["url"], token=token)
    result = rec.http("GET", item["url"], headers=headers, max_bytes=MAX_FILE_BYTES)
    if result.status != 200:
        rec.fail(f"{label} file download answered {result.status}.")
        return
    if media_type(result.headers) != "application/fhir+ndjson":
        rec.warn(f"{label} file is served as {media_type(result.headers) or 'no type'}.")
    lines = result.body.splitlines()
    if result.truncated:
        lines = lines[:-1]  # the last one may be cut off
        rec.warn(
            f"{label} file is over {MAX_FILE_BYTES // 2**20} MiB; its first "
            f"{len(lines)} lines were checked and its count is not compared."
        )
    rec.excerpt(f"{label} file, first line (values left out)", outline(lines))
    facts.files.append(
        {
            "item": f"{kind}[{index}] ({item['type']})",
            "kind": kind,
            "count": item.get("count"),
            "lines": None if result.truncated else len(lines),
        }
    )
    problems = [
        p for p in (_line_problem(label, item["type"], n, line) for n, line in enumerate(lines, 1))
        if p
    ]  # fmt: skip
    for problem in problems[:MAX_PROBLEMS]:
        rec.fail(problem)


def outline(lines: list[bytes]) -> bytes:
    """The first line's resourceType, id and element names, every other value left out.
    Check results are shown to every console role without an audit line, so their
    evidence of a file's shape must hold no patient data."""
    if not lines:
        return b""
    try:
        resource = untrusted_json.loads(lines[0])
    except ValueError:
        return f"not JSON ({len(lines[0])} bytes)".encode()
    if not isinstance(resource, dict):
        return b"not a JSON object"
    shape = {key: value if key in OUTLINE_KEPT else "..." for key, value in resource.items()}
    return json.dumps(shape).encode()


def _line_problem(label: str, expected: str, number: int, line: bytes) -> str:
    try:
        resource = untrusted_json.loads(line)
    except ValueError:
        return f"{label} file line {number} is not JSON."
    found = resource.get("resourceType") if isinstance(resource, dict) else None
    if found != expected:
        return f"{label} file line {number} holds a {found or 'non-resource'}."
    return ""


def output_counts(rec: Recorder, facts: Facts) -> str:
    """Each downloaded file's lines against its item's count, output[] and error[] alike;
    a missing count is worth a warning in output[] only (error counts are rarely sent)."""
    files = facts.need("files")
    for file in files:
        if file["count"] is None:
            if file["kind"] == "output":
                rec.warn(f"The {file['item']} item has no count.")
        elif file["lines"] is None:
            continue  # too large to read whole: ndjson_files said so
        elif file["count"] != file["lines"]:
            rec.fail(
                f"The {file['item']} item says count {file['count']}; "
                f"the file has {file['lines']} lines."
            )
    return "Every count matches the lines in its file."


def requires_access_token(rec: Recorder, facts: Facts) -> str:
    requires_token = facts.need("manifest").get("requiresAccessToken")
    url = _outputs(facts)[0]["url"]
    result = rec.http("GET", url, headers=_file_headers(rec, facts, url, token=False))
    if requires_token is True:
        if result.status < 400:
            rec.fail(
                f"requiresAccessToken is true, yet a download without a token got {result.status}."
            )
        return (
            "requiresAccessToken is true and a download without a token "
            f"was refused ({result.status})."
        )
    if result.status != 200:
        rec.fail(
            f"requiresAccessToken is false, yet a download without a token got {result.status}."
        )
    return "requiresAccessToken is false and the files download without a token (none was sent)."


def expires_header(rec: Recorder, facts: Facts) -> str:
    facts.need("manifest")
    expires = facts.completion_headers.get("Expires", "")
    if not expires:
        rec.warn("The completed status answer has no Expires header (SHOULD).")
        return ""
    try:
        parsedate_to_datetime(expires)
    except (TypeError, ValueError):
        rec.fail(f"Expires {expires!r} is not an HTTP date.")
    return f"Files expire {expires}."
