"""Writing the audit trail. Every surface records through `record_event`."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts.models import AuditEvent


def client_ip(request: HttpRequest | None) -> str | None:
    """Who sent the request: the peer, or behind a trusted TLS proxy the client that
    proxy connected for (bulkops/forwarded.py has already put it in REMOTE_ADDR)."""
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
        actor=storable(actor)[:255],
        action=action,
        outcome=outcome,
        reason=storable(reason)[:255],
        ip_address=client_ip(request),
        details=storable(details or {}),
    )


def record_system_event(action: str, *, failed: str = "", details: dict[str, Any]) -> AuditEvent:
    """What bulkops's own workers did (a submission fetched or loaded, a delivery sent):
    a success, or a failure for the reason `failed` gives."""
    return record_event(
        actor_type=AuditEvent.ActorType.SYSTEM,
        actor="bulkops",
        action=action,
        outcome=AuditEvent.Outcome.FAILURE if failed else AuditEvent.Outcome.SUCCESS,
        reason=failed,
        details=details,
    )


def storable(value: Any) -> Any:
    """`value` with every NUL character replaced by U+FFFD. Callers record what callers
    sent (an unverified iss, a requested scope); PostgreSQL refuses NUL in text and in
    jsonb, which would turn a refused request into a 500 and lose its audit line."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable(item) for item in value]
    return value


def record_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """Receiver for `user_logged_in`: a console sign-in is an audit event."""
    record_event(
        actor_type=AuditEvent.ActorType.OPERATOR,
        actor=user.get_username(),
        action="operator.login",
        request=request,
    )


def record_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """Receiver for `user_login_failed`: the name tried, never the password (Django has
    already masked it), and whether this name is now locked out from this address.
    django-axes' receiver runs first (INSTALLED_APPS order) and marks that on the request
    (accounts/lockout.py)."""
    tried = str(credentials.get("username") or credentials.get("login") or "")
    locked_out = getattr(request, "axes_locked_out", False)
    record_event(
        actor_type=AuditEvent.ActorType.OPERATOR,
        actor=tried,
        action="operator.login",
        outcome=AuditEvent.Outcome.FAILURE,
        reason=(
            "locked out after too many failed sign-ins"
            if locked_out
            else "wrong username or password"
        ),
        request=request,
    )


def record_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is not None:
        record_event(
            actor_type=AuditEvent.ActorType.OPERATOR,
            actor=user.get_username(),
            action="operator.logout",
            request=request,
        )


def record_password_reset(
    sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any
) -> None:
    """Receiver for allauth's `password_reset`: an operator chose a new password through
    a mailed link. The link's token is spent and never recorded."""
    record_event(
        actor_type=AuditEvent.ActorType.OPERATOR,
        actor=user.get_username(),
        action="operator.password_reset",
        request=request,
        details={"username": user.get_username(), "via": "email link"},
    )
