"""Bulk Submit parameters (spec digest bulk-data-v4-ballot.md §3): a `$bulk-submit` or
`$bulk-submit-status` Parameters body, read into values or refused with a FhirError.

A submission is named by the pair (submitter, submissionId); every other parameter
belongs to the one manifest a request sends (§3.2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bulkops.fhir.outcome import NOT_SUPPORTED, FhirError

IN_PROGRESS = "in-progress"
COMPLETED = "completed"
STOPPED = "stopped"
STATUSES = (IN_PROGRESS, COMPLETED, STOPPED)
NDJSON_FORMATS = ("application/fhir+ndjson", "application/ndjson", "ndjson")
# Parameters bulkops cannot honour yet: refused, so a Data Provider learns at once that
# its files would not be read rather than finding out from an empty status manifest.
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Headers that describe the connection or the message, which the HTTP client sets itself.
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
UNSUPPORTED = {
    "oauthMetadataUrl": "fetching with an OAuth token from the submitter's server",
    "fileEncryptionKey": "encrypted manifests and files",
}


@dataclass(frozen=True)
class SubmitRequest:
    submitter: str  # the identifier's value: the client id bulkops assigned
    submission_id: str
    status: str
    manifest_url: str
    replaces_manifest_url: str
    fhir_base_url: str
    file_headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class StatusRequest:
    submitter: str
    submission_id: str


def parse_submit(body: Any) -> SubmitRequest:
    """The `$bulk-submit` request in `body`, or a 400 FhirError saying what is wrong."""
    parameters = _parameters(body)
    submitter, submission_id = _pair(parameters)
    status = _status(parameters)
    manifest_url = _url(parameters, "manifestUrl")
    fhir_base_url = _url(parameters, "fhirBaseUrl")
    if not manifest_url and not _named(parameters, "submissionStatus"):
        raise FhirError(400, "Send submissionStatus, manifestUrl, or both (spec §3.2).")
    if manifest_url and not fhir_base_url:
        raise FhirError(400, "fhirBaseUrl is required whenever manifestUrl is sent.")
    for name, what in UNSUPPORTED.items():
        if _named(parameters, name):
            raise FhirError(
                400, f"{name} is not supported: bulkops does not offer {what}.", NOT_SUPPORTED
            )
    output_format = _string(parameters, "outputFormat")
    if output_format and output_format.split(";")[0].strip() not in NDJSON_FORMATS:
        raise FhirError(400, f"outputFormat {output_format!r} is not supported; send NDJSON.")
    return SubmitRequest(
        submitter=submitter,
        submission_id=submission_id,
        status=status,
        manifest_url=manifest_url,
        replaces_manifest_url=_url(parameters, "replacesManifestUrl"),
        fhir_base_url=fhir_base_url,
        file_headers=tuple(_header(p) for p in _named(parameters, "fileRequestHeader")),
    )


def parse_status_request(body: Any) -> StatusRequest:
    submitter, submission_id = _pair(_parameters(body))
    return StatusRequest(submitter, submission_id)


def _parameters(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise FhirError(400, "The body must be a FHIR Parameters resource.")
    parameters = body.get("parameter", [])
    if not isinstance(parameters, list) or not all(isinstance(p, dict) for p in parameters):
        raise FhirError(400, "Parameters.parameter must be a list of parameters.")
    return parameters


def _named(parameters: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [p for p in parameters if p.get("name") == name]


def _one(parameters: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    found = _named(parameters, name)
    if len(found) > 1:
        raise FhirError(400, f"{name} may be sent once.")
    return found[0] if found else None


def _string(parameters: list[dict[str, Any]], name: str, key: str = "valueString") -> str:
    parameter = _one(parameters, name)
    if parameter is None:
        return ""
    value = parameter.get(key)
    if not isinstance(value, str) or not value.strip():
        raise FhirError(400, f"{name} needs a non-empty {key}.")
    return value.strip()


def _url(parameters: list[dict[str, Any]], name: str) -> str:
    parameter = _one(parameters, name)
    if parameter is None:
        return ""
    value = parameter.get("valueUrl", parameter.get("valueUri"))
    if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
        raise FhirError(400, f"{name} needs a valueUrl with an http or https URL.")
    return value


def _pair(parameters: list[dict[str, Any]]) -> tuple[str, str]:
    submitter = _one(parameters, "submitter")
    identifier = submitter.get("valueIdentifier") if submitter else None
    value = identifier.get("value") if isinstance(identifier, dict) else None
    if not isinstance(value, str) or not value:
        raise FhirError(400, "submitter needs a valueIdentifier with a value.")
    submission_id = _string(parameters, "submissionId")
    if not submission_id:
        raise FhirError(400, "submissionId is required.")
    if len(submission_id) > 200:
        raise FhirError(400, "submissionId is longer than 200 characters.")
    return value, submission_id


def _status(parameters: list[dict[str, Any]]) -> str:
    parameter = _one(parameters, "submissionStatus")
    if parameter is None:
        return IN_PROGRESS  # spec §3.2: the default
    coding = parameter.get("valueCoding")
    code = coding.get("code") if isinstance(coding, dict) else None
    if code not in STATUSES:
        raise FhirError(
            400, f"submissionStatus needs a valueCoding with code {', '.join(STATUSES)}."
        )
    return str(code)


def _header(parameter: dict[str, Any]) -> tuple[str, str]:
    parts = _parameters({"resourceType": "Parameters", "parameter": parameter.get("part", [])})
    name, value = _string(parts, "headerName"), _string(parts, "headerValue")
    if not name or not value:
        raise FhirError(400, "fileRequestHeader needs headerName and headerValue parts.")
    if not HEADER_NAME.match(name) or name.lower() in RESERVED_HEADERS:
        raise FhirError(400, f"fileRequestHeader {name!r} is not a header bulkops can send.")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise FhirError(400, f"fileRequestHeader {name!r} has control characters in its value.")
    return name, value
