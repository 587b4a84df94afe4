from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client

from accounts.roles import ROLE_PERMISSIONS
from accounts.services import create_operator


def ensure_role_groups() -> None:
    """Recreate the role groups migration 0002 makes: a transactional test's flush
    empties every table, and Django re-creates permissions after it but not groups."""
    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(
            Permission.objects.filter(content_type__app_label="accounts", codename__in=codenames)
        )


@pytest.fixture
def console_client() -> Callable[[str | None], Client]:
    """A browser-like client logged in as a fresh operator with `role` (None: no role)."""

    def login_as(role: str | None) -> Client:
        ensure_role_groups()
        username = f"{role or 'nobody'}-user"
        if role is None:
            user = get_user_model().objects.create_user(username=username)
        else:
            user, _ = create_operator(username=username, role=role)
        client = Client()
        client.force_login(user)
        return client

    return login_as
