from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.services import create_operator


@pytest.fixture
def console_client() -> Callable[[str | None], Client]:
    """A browser-like client logged in as a fresh operator with `role` (None: no role)."""

    def login_as(role: str | None) -> Client:
        username = f"{role or 'nobody'}-user"
        if role is None:
            user = get_user_model().objects.create_user(username=username)
        else:
            user, _ = create_operator(username=username, role=role)
        client = Client()
        client.force_login(user)
        return client

    return login_as
