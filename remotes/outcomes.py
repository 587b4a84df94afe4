"""A remote's OperationOutcome error files in plain language, raw text beside it."""

from __future__ import annotations

import json
from typing import Any, BinaryIO

MAX_ISSUES = 200
RAW_CHARS = 2000

# FHIR issue-type codes an operator meets in Bulk Data error files, said plainly.
CODES = {
    "not-found": "something asked for does not exist at the remote",
    "not-supported": "the remote does not support part of the request",
    "too-costly": "the remote refused part of the request as too expensive",
    "forbidden": "the remote's access rules left something out",
    "security": "the remote's access rules left something out",
    "processing": "the remote failed while processing",
    "invalid": "the remote found something invalid",
    "incomplete": "the remote's answer is incomplete",
    "exception": "the remote hit an unexpected error",
    "informational": "a note from the remote",
    "throttled": "the remote is limiting how much it serves",
}


def read_outcomes(handle: BinaryIO) -> list[dict[str, Any]]:
    """Up to MAX_ISSUES issues: severity, a sentence for people, and the raw line."""
    issues: list[dict[str, Any]] = []
    with handle:
        for raw in handle:
            if len(issues) >= MAX_ISSUES:
                break
            text = raw.decode("utf-8", "replace").strip()
            if not text:
                continue
            try:
                outcome = json.loads(text)
            except ValueError:
                outcome = {}
            for issue in outcome.get("issue", []) if isinstance(outcome, dict) else []:
                issues.append({**plain(issue), "raw": text[:RAW_CHARS]})
            if not isinstance(outcome, dict) or not outcome.get("issue"):
                issues.append(
                    {"severity": "unknown", "plain": "Not an OperationOutcome.", "raw": text}
                )
    return issues[:MAX_ISSUES]


def plain(issue: Any) -> dict[str, str]:
    if not isinstance(issue, dict):
        return {"severity": "unknown", "plain": "An issue the remote did not describe."}
    severity = str(issue.get("severity") or "unknown")
    code = str(issue.get("code") or "")
    details = issue.get("details") if isinstance(issue.get("details"), dict) else {}
    said = str(issue.get("diagnostics") or details.get("text") or "").strip()
    meaning = CODES.get(code, f"issue type {code!r}" if code else "no issue type given")
    sentence = f"{severity.capitalize()}: {meaning}."
    if said:
        sentence += f" The remote says: {said}"
    return {"severity": severity, "plain": sentence}


def ignored_type_filters(issues: list[dict[str, Any]], pairs: list[list[str]]) -> list[str]:
    """Warnings for the job when the export asked for `_typeFilter` and the remote's
    error files say something about it: a remote that ignores a filter under lenient
    handling writes it there (spec §1.2), and its output then holds unfiltered types."""
    if not any(name == "_typeFilter" for name, _ in pairs):
        return []
    return [
        f"The remote server reports on _typeFilter, so its output may not be filtered as "
        f"asked. {issue['plain']}"
        for issue in issues
        if "typefilter" in issue["raw"].lower()
    ]
