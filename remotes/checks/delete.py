"""The DELETE check (spec §3, checklist 43–44): 202, then every poll answers 404."""

from __future__ import annotations

from remotes.checks.base import Facts, Recorder


def delete_job(rec: Recorder, facts: Facts) -> str:
    status_url = facts.need("status_url")
    auth = {"Authorization": f"Bearer {facts.access_token}", "Accept": "application/json"}
    result = rec.http("DELETE", status_url, headers=auth)
    rec.excerpt(f"DELETE answer ({result.status})", result.body)
    if result.status != 202:
        rec.fail(f"DELETE on the status URL answered {result.status}, not 202.")
        return ""
    after = rec.http("GET", status_url, headers=auth)
    if after.status != 404:
        rec.fail(f"After DELETE the status URL answered {after.status}, not 404.")
    return "DELETE answered 202 and the status URL then answered 404."
