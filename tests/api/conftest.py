"""The API cast: one token-holding operator per role, plus a user with no role."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client

from accounts.services import create_api_token, create_operator
from tests.accounts.conftest import (
    console_client,  # noqa: F401 - shared fixtures
    ensure_role_groups,
)
from tests.exports.conftest import (  # noqa: F401
    client_a,
    client_b,
    jwk_a,
    jwk_b,
    make_fhir_client,
    store,
)


@pytest.fixture(autouse=True)
def fresh_throttles() -> None:
    """Throttle counters live in the cache; one test's calls must not slow another."""
    cache.clear()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    """Every API test creates operators; the API never checks their passwords, so the
    slow production hasher would only cost time (Django's testing advice)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class ApiClient:
    """A script calling the operator API with a personal token (or none)."""

    def __init__(self, token: str | None) -> None:
        self.http = Client()
        self.headers = {"Authorization": f"Token {token}"} if token else {}

    def get(self, path: str, **params: Any):
        return self.http.get(path, params, headers=self.headers)

    def post(self, path: str, body: Any = None):
        return self.http.post(
            path,
            body if body is not None else {},
            content_type="application/json",
            headers=self.headers,
        )


@pytest.fixture
def api_as(db) -> Callable[[str | None], ApiClient]:
    """An API client holding a fresh token of an operator with `role` (None: no role)."""

    ensure_role_groups()  # a transactional test before this one flushed them

    def make(role: str | None) -> ApiClient:
        username = f"{role or 'nobody'}-api"
        if role is None:
            user = get_user_model().objects.create_user(username=username)
        else:
            user, _ = create_operator(username=username, role=role)
        return ApiClient(create_api_token(user=user, name="tests").raw)

    return make


@pytest.fixture
def anonymous() -> ApiClient:
    return ApiClient(None)
