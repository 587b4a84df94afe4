"""Operator management: the one place operators are created and given roles."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.audit import record_event
from accounts.models import AuditEvent
from accounts.roles import Role


def generate_password() -> str:
    return secrets.token_urlsafe(15)


@transaction.atomic
def create_operator(
    *, username: str, role: str, email: str = "", created_by: str = "system"
) -> tuple[AbstractUser, str]:
    """Create an operator with a generated password; return the user and the password.

    The password is returned once for the caller to show; only its hash is stored.
    """
    if role not in Role.values:
        raise ValidationError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.")
    user_model = get_user_model()
    user = user_model(username=username, email=email)
    user.full_clean(exclude=["password"])
    password = generate_password()
    user.set_password(password)
    user.save()
    user.groups.add(Group.objects.get(name=role))
    record_event(
        actor_type=(
            AuditEvent.ActorType.SYSTEM if created_by == "system" else AuditEvent.ActorType.OPERATOR
        ),
        actor=created_by,
        action="operator.created",
        details={"username": username, "role": role},
    )
    return user, password
