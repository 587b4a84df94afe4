"""Kick-off and status checks (spec §1.2, §1.5, §2; checklist 8–10, 29, 34): refusals of
malformed kick-offs, the accepted kick-off, and polling until the manifest arrives.

The export is kept small (`_type=Patient`, at the target's group when it has one) so
the battery finishes in seconds."""

from __future__ import annotations

import time
import urllib.parse

from django.conf import settings

from bulkops.outbound import same_origin
from exports.bulk_client import HttpResult, retry_after, transient_code
from remotes.checks.base import Facts, Recorder, is_absolute, media_type

POLL_TIMEOUT = 120.0
MAX_WAIT = 10.0  # seconds; longer Retry-After values are shortened for a check


def kickoff_url(rec: Recorder) -> str:
    path = f"/Group/{rec.target.group_id}/$export" if rec.target.group_id else "/Patient/$export"
    return f"{rec.target.base_url}{path}?{urllib.parse.urlencode({'_type': 'Patient'})}"


def _headers(facts: Facts, *, token: bool = True, **extra: str) -> dict[str, str]:
    headers = {"Accept": "application/fhir+json", "Prefer": "respond-async", **extra}
    if token and facts.access_token:  # never an empty "Bearer " for want of a token
        headers["Authorization"] = f"Bearer {facts.access_token}"
    return {name: value for name, value in headers.items() if value}


def _is_outcome(result: HttpResult) -> bool:
    try:
        body = result.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("resourceType") == "OperationOutcome"


def _cancel_if_accepted(rec: Recorder, facts: Facts, result: HttpResult) -> None:
    """A kick-off the server chose to accept is cleaned up again at once (with our
    token, so only on the server's own origin)."""
    location = result.headers.get("Content-Location", "")
    if result.status == 202 and same_origin(location, rec.target.base_url):
        rec.http("DELETE", location, headers=_headers(facts))


def _refused_with_outcome(
    rec: Recorder, facts: Facts, result: HttpResult, what: str, *, may_accept: bool
) -> str:
    rec.excerpt(f"answer ({result.status})", result.body)
    if result.status == 202:
        _cancel_if_accepted(rec, facts, result)
        (rec.warn if may_accept else rec.fail)(f"A kick-off {what} was accepted.")
        return ""
    if not 400 <= result.status < 600 or not _is_outcome(result):
        rec.fail(f"Refused with {result.status} but without a JSON OperationOutcome.")
    return f"A kick-off {what} was refused with {result.status} and an OperationOutcome."


def kickoff_without_prefer(rec: Recorder, facts: Facts) -> str:
    facts.need("access_token")
    result = rec.http("GET", kickoff_url(rec), headers=_headers(facts, Prefer=""))
    return _refused_with_outcome(
        rec, facts, result, "without Prefer: respond-async", may_accept=True
    )


def kickoff_bad_accept(rec: Recorder, facts: Facts) -> str:
    facts.need("access_token")
    result = rec.http("GET", kickoff_url(rec), headers=_headers(facts, Accept="text/html"))
    return _refused_with_outcome(rec, facts, result, "with Accept: text/html", may_accept=True)


def kickoff_without_token(rec: Recorder, facts: Facts) -> str:
    result = rec.http("GET", kickoff_url(rec), headers=_headers(facts, token=False))
    summary = _refused_with_outcome(rec, facts, result, "without a token", may_accept=False)
    if result.status == 401 and not result.headers.get("WWW-Authenticate"):
        rec.warn("The 401 has no WWW-Authenticate header (RFC 6750).")
    elif result.status not in (202, 400, 401):
        rec.warn(f"Refused with {result.status}; clients expect 401 (or 400).")
    return summary


def kickoff(rec: Recorder, facts: Facts) -> str:
    facts.need("access_token")
    result = rec.http("GET", kickoff_url(rec), headers=_headers(facts))
    rec.excerpt(f"kick-off answer ({result.status})", result.body)
    location = result.headers.get("Content-Location", "")
    if result.status != 202:
        rec.fail(f"The kick-off was answered with {result.status}, not 202.")
    elif not is_absolute(location):
        rec.fail("The 202 has no absolute Content-Location status URL.")
    elif not same_origin(location, rec.target.base_url):
        rec.fail(
            f"The status URL {location} is not on the FHIR server's origin; our token goes "
            "nowhere else, so it is neither polled nor deleted."
        )
    else:
        facts.status_url = location
        return "The kick-off was accepted with 202 and an absolute Content-Location."
    facts.reasons["status_url"] = facts.reasons["manifest"] = "the kick-off gave no status URL."
    return ""


def _wait_seconds(rec: Recorder, result: HttpResult, default: float) -> float:
    """What Retry-After asks (seconds or an HTTP-date), else `default`; a check waits at
    most MAX_WAIT (or BULKOPS_REMOTE_MAX_WAIT, when lower), and says when it waited
    less than asked."""
    asked = retry_after(result.headers.get("Retry-After", ""))
    longest = min(MAX_WAIT, settings.BULKOPS_REMOTE_MAX_WAIT)
    if asked is not None and asked > longest:
        rec.note(f"A Retry-After of {asked:,.0f} s was waited {longest:,.0f} s.")
    return min(default if asked is None else asked, longest)


def _poll_until_complete(
    rec: Recorder, facts: Facts, status_url: str, in_progress: list[HttpResult]
) -> HttpResult | None:
    """Poll until the 200; the in-progress answers go to `in_progress`. A poll failing
    with a transient error (spec §2.2) is polled again, as clients are asked to, up to
    BULKOPS_REMOTE_TRANSIENT_RETRIES times. None, with the failure recorded, when the
    export does not complete."""
    deadline = time.monotonic() + POLL_TIMEOUT
    transients = 0
    while time.monotonic() < deadline:
        result = rec.http("GET", status_url, headers=_headers(facts, Accept="application/json"))
        if result.status == 200:
            return result
        code = transient_code(result)
        if code and transients < settings.BULKOPS_REMOTE_TRANSIENT_RETRIES:
            transients += 1
            rec.excerpt(f"status answer ({result.status}, transient)", result.body)
            rec.note(
                f"A poll answered {result.status} with a transient error ({code}) and was retried."
            )
            time.sleep(_wait_seconds(rec, result, 2.0 ** (transients - 1)))
            continue
        if result.status not in (202, 429):
            rec.excerpt(f"status answer ({result.status})", result.body)
            rec.fail(f"A poll was answered with {result.status}; the export did not complete.")
            return None
        in_progress.append(result)
        time.sleep(_wait_seconds(rec, result, 1.0))
    rec.fail(f"The export did not complete within {POLL_TIMEOUT:.0f} s.")
    return None


def status_polling(rec: Recorder, facts: Facts) -> str:
    status_url = facts.need("status_url")
    in_progress: list[HttpResult] = []
    result = _poll_until_complete(rec, facts, status_url, in_progress)
    if result is None:
        return ""
    rec.excerpt("manifest", result.body)
    facts.completion_headers = result.headers
    if media_type(result.headers) != "application/json":
        rec.fail(
            f"The manifest is served as {media_type(result.headers) or 'nothing'}, "
            "not application/json."
        )
    try:
        manifest = result.json()
    except ValueError:
        rec.fail("The manifest is not JSON.")
        manifest = None
    if isinstance(manifest, dict):
        facts.manifest = manifest
    else:
        facts.reasons["manifest"] = "the completed status answer held no JSON manifest."
    if not in_progress:
        return "The export completed before the first poll, so no in-progress answer was seen."
    if not all(r.headers.get("Retry-After") for r in in_progress):
        rec.warn("An in-progress answer had no Retry-After (SHOULD).")
    if not any(r.headers.get("X-Progress") for r in in_progress):
        rec.warn("No in-progress answer had X-Progress (optional).")
    return f"{len(in_progress)} in-progress answer(s) with Retry-After and X-Progress, then 200."
