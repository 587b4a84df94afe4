"""Managing operators after they exist: their role, deactivation and reactivation, and
the one rule all three keep: someone active must still be able to manage operators.

Console, operator API and `manage.py operator` call these functions; each records its
audit event in the same transaction. Creating an operator and resetting a password are
`create_operator` and `reset_operator_password` in accounts.services. `actor` None means
the command line, whose users hold the database anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AbstractUser, Group, Permission
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from accounts import sessions
from accounts.models import ApiToken
from accounts.roles import MANAGE_OPERATORS, Role
from accounts.services import record_change


def operators() -> QuerySet[AbstractUser]:
    """Every operator with their groups and a count of their active API tokens."""
    return (
        get_user_model()
        .objects.prefetch_related("groups")
        .annotate(
            api_token_count=Count("api_tokens", filter=Q(api_tokens__revoked_at__isnull=True))
        )
        .order_by("username")
    )


def role_of(user: AbstractUser) -> str:
    """The operator's role (accounts.roles.Role), or "" for a user without one."""
    names = {group.name for group in user.groups.all()}
    return next((role for role in Role.values if role in names), "")


def _managers() -> QuerySet[AbstractUser]:
    """Active users who may manage operators: superusers and holders of the permission,
    through a role or directly."""
    manage = Permission.objects.filter(
        content_type__app_label="accounts", codename=MANAGE_OPERATORS
    )
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(
            Q(is_superuser=True)
            | Q(groups__permissions__in=manage)
            | Q(user_permissions__in=manage)
        )
        .distinct()
    )


def _lock_operators() -> None:
    """Serialise every change that could remove the last admin: two admins demoting each
    other at once would each still see the other as an admin. Holding the active users'
    rows makes the second change wait and then count the first one's result."""
    list(get_user_model().objects.select_for_update().filter(is_active=True).values("pk"))


def _is_admin(user: AbstractUser) -> bool:
    return _managers().filter(pk=user.pk).exists()


def _require_an_admin_remains(user: AbstractUser, *, was_admin: bool) -> None:
    """ValidationError if `user` was an active admin and, after a change to them in this
    transaction, nobody active could manage operators any more: nobody could then undo
    the change in the console. (A site without any admin may still change others.)"""
    if was_admin and not _managers().exists():
        raise ValidationError(
            {
                "username": f"{user.get_username()} is the last active admin; make another "
                "operator an admin first."
            }
        )


def _record(
    actor: AbstractBaseUser | None,
    action: str,
    user: AbstractUser,
    request: HttpRequest | None,
    **details: Any,
) -> None:
    """Audit one change to operator `user`, naming who made it."""
    record_change(actor, action, request=request, username=user.get_username(), **details)


def _refuse_self(user: AbstractUser, actor: AbstractBaseUser | None, doing: str) -> None:
    if actor is not None and actor.pk == user.pk:
        raise ValidationError({"username": f"You cannot {doing} yourself; another admin can."})


@transaction.atomic
def set_operator_role(
    *,
    user: AbstractUser,
    role: str,
    actor: AbstractBaseUser | None,
    request: HttpRequest | None = None,
) -> AbstractUser:
    """Give `user` exactly the role `role`; it takes effect on their next request (views
    and API tokens check permissions every time). Refused for the last active admin."""
    if role not in Role.values:
        raise ValidationError(
            {"role": f"Unknown role {role!r}; choose one of {', '.join(Role.values)}."}
        )
    _lock_operators()
    before, was_admin = role_of(user), _is_admin(user)
    user.groups.remove(*Group.objects.filter(name__in=Role.values))
    user.groups.add(Group.objects.get(name=role))
    _require_an_admin_remains(user, was_admin=was_admin)
    _record(actor, "operator.role_changed", user, request, **{"from": before, "to": role})
    return user


@dataclass(frozen=True)
class Deactivation:
    """What deactivating an operator ended, for the caller to report."""

    user: AbstractUser
    sessions_ended: int
    api_tokens_revoked: int


@transaction.atomic
def deactivate_operator(
    *, user: AbstractUser, actor: AbstractBaseUser | None, request: HttpRequest | None = None
) -> Deactivation:
    """Stop `user` signing in, end every console session they have and revoke their API
    tokens, all at once. Revoked tokens stay revoked after a reactivation: a token that
    may have leaked meanwhile does not come back to life. Refused for oneself and for
    the last active admin."""
    _refuse_self(user, actor, "deactivate")
    _lock_operators()
    user.refresh_from_db(fields=["is_active"])
    if not user.is_active:
        raise ValidationError({"username": f"{user.get_username()} is already deactivated."})
    was_admin = _is_admin(user)
    user.is_active = False
    user.save(update_fields=["is_active"])
    _require_an_admin_remains(user, was_admin=was_admin)
    ended = sessions.end_all(user)
    revoked = ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    _record(
        actor,
        "operator.deactivated",
        user,
        request,
        sessions_ended=ended,
        api_tokens_revoked=revoked,
    )
    return Deactivation(user, ended, revoked)


@transaction.atomic
def reactivate_operator(
    *, user: AbstractUser, actor: AbstractBaseUser | None, request: HttpRequest | None = None
) -> AbstractUser:
    """Let a deactivated operator sign in again with their password, in their role. Their
    old API tokens stay revoked; they create new ones."""
    if user.is_active:
        raise ValidationError({"username": f"{user.get_username()} is already active."})
    user.is_active = True
    user.save(update_fields=["is_active"])
    _record(actor, "operator.reactivated", user, request)
    return user


def counted(number: int, noun: str) -> str:
    """'1 session', '2 sessions'."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def describe_operator_event(action: str, details: dict[str, Any]) -> str:
    """What an operator event did, in words for the audit trail ("created operator ada
    (auditor)"); "" for events about something else."""
    name = details.get("username", "")
    if action == "operator.created":
        return f"created operator {name} ({details.get('role', '')})"
    if action == "operator.role_changed":
        before = details.get("from") or "none"
        return f"changed the role of {name} from {before} to {details.get('to')}"
    if action == "operator.deactivated":
        ended = counted(details.get("sessions_ended", 0), "session")
        revoked = counted(details.get("api_tokens_revoked", 0), "API token")
        return f"deactivated operator {name}: {ended} ended, {revoked} revoked"
    if action == "operator.reactivated":
        return f"reactivated operator {name}"
    if action == "operator.password_reset" and details.get("via") == "email link":
        return f"{name} chose a new password through a mailed link"
    if action == "operator.time_zone_changed":
        return f"{name} chose to see times in {details.get('to')}"
    if action == "operator.password_reset":
        ended = counted(details.get("sessions_ended", 0), "session")
        return f"reset the password of {name}: {ended} ended"
    return ""
