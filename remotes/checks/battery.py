"""The conformance battery: every check in order, each with its own evidence. A check
whose prerequisite failed is skipped with the reason instead of failing twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from bulkops.outbound import FetchError
from remotes.checks import delete, discovery, kickoff, manifest, tokens, v4
from remotes.checks.base import SKIP, CheckResult, Facts, Recorder, Skip
from remotes.target import RemoteTarget


class Check(NamedTuple):
    name: str
    group: str
    run: Callable[[Recorder, Facts], str]


CHECKS: tuple[Check, ...] = (
    Check("smart-configuration", "Discovery", discovery.smart_configuration),
    Check("capability-statement", "Discovery", discovery.capability_statement),
    Check("token-request", "Token", tokens.token_request),
    Check("token-wrong-audience", "Token", tokens.token_wrong_audience),
    Check("token-expired-assertion", "Token", tokens.token_expired),
    Check("token-reused-jti", "Token", tokens.token_reused_jti),
    Check("kickoff-without-prefer", "Kick-off", kickoff.kickoff_without_prefer),
    Check("kickoff-bad-accept", "Kick-off", kickoff.kickoff_bad_accept),
    Check("kickoff-without-token", "Kick-off", kickoff.kickoff_without_token),
    Check("kickoff-accepted", "Kick-off", kickoff.kickoff),
    Check("status-polling", "Status", kickoff.status_polling),
    Check("manifest-fields", "Manifest", manifest.manifest_fields),
    Check("ndjson-files", "Files", manifest.ndjson_files),
    Check("output-counts", "Files", manifest.output_counts),
    Check("requires-access-token", "Files", manifest.requires_access_token),
    Check("expires-header", "Files", manifest.expires_header),
    Check("delete", "Delete", delete.delete_job),
    Check("v4-get-refused", "Bulk Data 4", v4.v4_get_refused),
    Check("v4-kickoff-accepted", "Bulk Data 4", v4.v4_kickoff),
    Check("v4-manifest-pages", "Bulk Data 4", v4.v4_manifest_pages),
    Check("v4-organized-output", "Bulk Data 4", v4.v4_organized_output),
    Check("v4-separate-export-status", "Bulk Data 4", v4.v4_separate_status),
)


def run_check(check: Check, target: RemoteTarget, facts: Facts) -> CheckResult:
    recorder = Recorder(target)
    try:
        passed = check.run(recorder, facts)
    except Skip as reason:
        result = recorder.result(check.name, check.group, "")
        result.status, result.summary = SKIP, f"Skipped: {reason}"
        return result
    except FetchError as error:  # refused address, unreachable host, timeout, TLS, bad URL
        recorder.fail(f"The request failed: {error}.")
        passed = ""
    return recorder.result(check.name, check.group, passed)


def run_battery(
    target: RemoteTarget,
    on_result: Callable[[CheckResult], None] | None = None,
    facts: Facts | None = None,
) -> list[CheckResult]:
    """Run every check against `target`; `on_result` sees each result as it comes (the
    console shows them live); `facts` holds what the checks learnt (the token endpoint)."""
    facts = facts if facts is not None else Facts()
    results = []
    for check in CHECKS:
        result = run_check(check, target, facts)
        results.append(result)
        if on_result:
            on_result(result)
    return results


def overall_status(results: list[CheckResult] | list[dict]) -> str:
    statuses = {r.status if isinstance(r, CheckResult) else r["status"] for r in results}
    return next((s for s in ("fail", "warn") if s in statuses), "pass")
