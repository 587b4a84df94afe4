"""What an audit entry is about, in words for the audit trail ("registered client Lab",
"saved Group Cohort 1 (g1), 2 members"), from the details its writer recorded.

Details hold what callers sent (a refused request's claims among them): every phrase is
plain text, escaped by the template, and an action without a phrase here says nothing
rather than guessing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from accounts.models import TOKEN_REQUEST, AuditEvent
from accounts.operators import describe_operator_event

Phrase = Callable[[dict[str, Any], str], str]


def describe_event(event: AuditEvent, client_names: Mapping[str, str]) -> str:
    """The entry in words; `client_names` maps the client_ids it may name to names."""
    details = event.details if isinstance(event.details, dict) else {}
    client_id = str(details.get("client_id") or "")
    client = client_names.get(client_id) or client_id
    phrase = _PHRASES.get(event.action)
    return phrase(details, client) if phrase else describe_operator_event(event.action, details)


def _changed(details: dict[str, Any], client: str) -> str:
    changed = details.get("changed")
    fields = ", ".join(sorted(changed)) if isinstance(changed, dict) and changed else "nothing"
    return f"changed {fields} of client {client}"


def _group(details: dict[str, Any], _: str) -> str:
    name, group = details.get("name"), details.get("group", "")
    said = f"saved Group {name} ({group})" if name else f"saved Group {group}"
    return f"{said}, {details.get('members', 0)} members"


def _upload(details: dict[str, Any], _: str) -> str:
    files = details.get("files") if isinstance(details.get("files"), list) else []
    created = sum(f.get("created", 0) for f in files if isinstance(f, dict))
    return (
        f"uploaded {len(files)} file{'s' if len(files) != 1 else ''}, {created} resources created"
    )


_PHRASES: dict[str, Phrase] = {
    "client.registered": lambda d, c: f"registered client {d.get('name') or c}",
    "client.updated": _changed,
    "client.disabled": lambda d, c: f"disabled client {c}",
    "client.enabled": lambda d, c: f"enabled client {c}",
    "client.key_added": lambda d, c: f"added key {d.get('kid', '')} to client {c}",
    "client.key_retired": lambda d, c: f"retired key {d.get('kid', '')} of client {c}",
    "client.keys_checked": lambda d, c: "checked a key set before registering a client",
    TOKEN_REQUEST: lambda d, c: f"token request for {d.get('scope') or 'no scope'}",
    "export.kickoff": lambda d, c: (
        f"started a {d.get('level', '')} export for {c or 'the console'}".replace("  ", " ")
    ),
    "export.cancelled": lambda d, c: "cancelled an export",
    "export.deleted": lambda d, c: "deleted an export's files",
    "export.completed": lambda d, c: "an export completed",
    "export.failed": lambda d, c: "an export failed",
    "group.upserted": _group,
    "group.deleted": lambda d, c: f"deleted Group {d.get('group', '')}",
    "data.uploaded": _upload,
    "api_token.created": lambda d, c: f"created API token {d.get('name', '')}".strip(),
    "api_token.revoked": lambda d, c: f"revoked API token {d.get('name', '')}".strip(),
    "audit.exported": lambda d, c: "downloaded the audit trail as CSV",
}
