"""The audit line for every look at an export file's contents.

Reading exported resources is reading patient data, so each view of a file writes one
audit event, the same way on every surface: the console preview (each page, page size
and filter), the operator API preview, and downloads from the console and the FHIR API.
The event names who read, which file of which job, and which part was asked for (the
line range shown, the byte offset it was read from, the filter text typed), never the
resources themselves. The audit trail turns those details back into words and a link.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest
from django.urls import reverse

from accounts.audit import record_event
from accounts.models import AuditEvent, BackendClient
from exports.models import ExportFile

PREVIEW = "export.preview"
DOWNLOAD = "export.download"


@dataclass(frozen=True)
class Part:
    """What one view showed of a file: lines first_line..last_line (none when
    last_line < first_line), read from byte `offset`, kept if they contain `filter`."""

    first_line: int
    last_line: int
    offset: int = 0
    filter: str = ""
    matches: int = 0


def record_file_read(
    request: HttpRequest,
    file: ExportFile,
    *,
    action: str = PREVIEW,
    part: Part | None = None,
    client: BackendClient | None = None,
) -> AuditEvent:
    """Record that the signed-in operator (or `client`, on the FHIR API) read `file`:
    all of it, or the `part` shown."""
    details: dict[str, Any] = {
        "job": str(file.job.uuid),
        "file": file.storage_key,
        "file_id": str(file.uuid),
        "type": file.resource_type,
    }
    if part is not None:
        shown = part.last_line >= part.first_line
        details["lines"] = [part.first_line, part.last_line] if shown else []
        details["offset"] = part.offset
        if part.filter:
            details["filter"] = part.filter
            details["matches"] = part.matches
    if client is not None:
        actor_type, actor = AuditEvent.ActorType.CLIENT, client.client_id
    else:
        actor_type, actor = AuditEvent.ActorType.OPERATOR, request.user.get_username()
    return record_event(
        actor_type=actor_type, actor=actor, action=action, request=request, details=details
    )


def audit_columns(details: dict[str, Any]) -> dict[str, str] | None:
    """The audit trail's link and words for a file read this module recorded (its
    details name the file), registered with accounts.audit_links by exports.apps."""
    if "file_id" not in details:
        return None
    return {"file_url": read_url(details), "file_part": describe_read(details)}


def describe_read(details: dict[str, Any]) -> str:
    """The part of a file an audit event says was read, in words for the audit trail."""
    lines = details.get("lines")
    if lines is None:
        return "the whole file"
    said = f"lines {lines[0]}–{lines[1]}" if lines else "no lines"
    if details.get("offset"):
        said += f" from byte {details['offset']}"
    if details.get("filter"):
        said = f"searched {said} for “{details['filter']}” ({details.get('matches', 0)} matching)"
    return said


def read_url(details: dict[str, Any]) -> str:
    """The console preview of the file an audit event names, at the page that was read."""
    url = reverse("console:file-preview", args=[details["file_id"]])
    lines = details.get("lines")
    if not lines:
        return url
    query = {"offset": details.get("offset", 0), "line": lines[0], "n": lines[1] - lines[0] + 1}
    if details.get("filter"):
        query["q"] = details["filter"]
    return f"{url}?{urlencode(query)}"
