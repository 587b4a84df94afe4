"""OperationOutcome and the one error type every FHIR-facing rule raises.

Protocol code raises `FhirError`; the `@fhir_endpoint` decorator (bulkops/fhir_http.py)
turns it into an OperationOutcome response, so views carry no try/except.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# IssueType codes we use (http://hl7.org/fhir/R4/valueset-issue-type.html).
INVALID = "invalid"
NOT_FOUND = "not-found"
DELETED = "deleted"
NOT_SUPPORTED = "not-supported"
FORBIDDEN = "forbidden"
LOGIN = "login"
EXPIRED = "expired"
THROTTLED = "throttled"
TOO_LONG = "too-long"
PROCESSING = "processing"
EXCEPTION = "exception"
INFORMATIONAL = "informational"
TRANSIENT = "transient"


@dataclass(frozen=True)
class Issue:
    severity: str  # fatal | error | warning | information
    code: str
    diagnostics: str

    def as_json(self) -> dict[str, str]:
        return {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}


def operation_outcome(*issues: Issue) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [issue.as_json() for issue in issues]}


@dataclass
class FhirError(Exception):
    """A request the FHIR surface refuses: HTTP status plus one OperationOutcome issue."""

    status: int
    diagnostics: str
    code: str = INVALID
    severity: str = "error"
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.diagnostics)

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(Issue(self.severity, self.code, self.diagnostics))
