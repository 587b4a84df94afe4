"""Writing the audit trail. Every surface records through `record_event`."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts.models import AuditEvent


def client_ip(request: HttpRequest | None) -> str | None:
    """The peer address Django saw. Proxies' X-Forwarded-For is not trusted here."""
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def record_event(
    *,
    actor_type: str,
    actor: str,
    action: str,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    reason: str = "",
    request: HttpRequest | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent.objects.create(
        actor_type=actor_type,
        actor=actor[:255],
        action=action,
        outcome=outcome,
        reason=reason[:255],
        ip_address=client_ip(request),
        details=details or {},
    )
