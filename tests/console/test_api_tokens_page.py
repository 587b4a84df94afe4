"""Operators create and revoke their personal API tokens in the console."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.models import ApiToken, AuditEvent

pytestmark = pytest.mark.django_db


def create(console: Client, name: str):
    return console.post("/tokens/", {"name": name})


def api(raw: str):
    return Client().get("/api/v1/inventory/", headers={"Authorization": f"Token {raw}"})


def test_a_new_token_is_shown_once_and_works_against_the_api(console_client):
    console = console_client("operator")
    page = create(console, "nightly export")
    assert page.status_code == 200
    assert page["Cache-Control"].startswith("max-age=0")
    raw = re.search(r"<code>([A-Za-z0-9_\-]{40,})</code>", page.content.decode()).group(1)
    assert api(raw).status_code == 200
    listing = console.get("/tokens/").content.decode()
    assert "nightly export" in listing and raw not in listing
    assert raw[:8] in listing  # the non-secret prefix tells tokens apart
    event = AuditEvent.objects.get(action="api_token.created")
    assert event.actor == "operator-user" and raw not in str(event.details)


def test_revoking_stops_the_token_at_once(console_client):
    console = console_client("auditor")
    raw = re.search(
        r"<code>([A-Za-z0-9_\-]{40,})</code>", create(console, "siem pull").content.decode()
    ).group(1)
    token = ApiToken.objects.get()
    response = console.post(f"/tokens/{token.pk}/revoke/", follow=True)
    assert "revoked" in response.content.decode()
    assert api(raw).status_code == 401
    assert AuditEvent.objects.filter(action="api_token.revoked").exists()


def test_an_operator_cannot_revoke_someone_elses_token(console_client):
    owner = console_client("admin")
    create(owner, "admin script")
    token = ApiToken.objects.get()
    other = console_client("operator")
    response = other.post(f"/tokens/{token.pk}/revoke/", follow=True)
    assert "You have no active API token" in response.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is None


def test_an_empty_name_is_refused_next_to_the_field(console_client):
    console = console_client("operator")
    response = create(console, "   ")
    assert response.status_code == 400
    assert "Give the token a name" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_creating_a_token_needs_a_csrf_token(console_client):
    console = console_client("operator")
    console.handler.enforce_csrf_checks = True
    assert create(console, "x").status_code == 403
    assert not ApiToken.objects.exists()
