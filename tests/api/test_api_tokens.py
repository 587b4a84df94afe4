"""Personal API tokens: created once-visible, stored hashed, revocable, role-bound."""

from __future__ import annotations

import hashlib
import logging
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import ApiToken, AuditEvent
from accounts.services import create_api_token, create_operator

pytestmark = pytest.mark.django_db


def test_operator_creates_a_token_in_a_session_and_sees_its_value_once(console_client):
    browser = console_client("operator")
    created = browser.post(
        "/api/v1/tokens/create", {"name": "nightly"}, content_type="application/json"
    )
    assert created.status_code == 201
    body = created.json()
    raw = body["token"]
    assert body["name"] == "nightly"
    assert body["prefix"] == raw[:8]
    stored = ApiToken.objects.get(pk=body["id"])
    assert stored.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(list(ApiToken.objects.values()))
    listed = browser.get("/api/v1/tokens/").json()["results"]
    assert [t["name"] for t in listed] == ["nightly"]
    assert "token" not in listed[0]
    event = AuditEvent.objects.get(action="api_token.created")
    assert (event.actor, event.details["name"]) == ("operator-user", "nightly")
    assert raw not in str(event.details)


def test_token_authenticates_with_the_token_scheme(api_as):
    response = api_as("auditor").get("/api/v1/audit-events/")
    assert response.status_code == 200


def test_calls_without_credentials_get_401_with_a_token_challenge(anonymous):
    response = anonymous.get("/api/v1/clients/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {
        "status": 401,
        "code": "not_authenticated",
        "detail": "Authentication credentials were not provided.",
    }


@pytest.mark.parametrize("header", ["Token nope", "Token ", "Token a b", "token nope"])
def test_unknown_or_malformed_token_gets_401(header):
    response = Client().get("/api/v1/clients/", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_revoked_token_stops_working_at_once():
    user, _ = create_operator(username="olivia", role="operator")
    issued = create_api_token(user=user, name="ci")
    headers = {"Authorization": f"Token {issued.raw}"}
    revoke = Client().post(f"/api/v1/tokens/{issued.token.pk}/revoke", headers=headers)
    assert revoke.status_code == 204
    assert Client().get("/api/v1/exports/", headers=headers).status_code == 401
    event = AuditEvent.objects.get(action="api_token.revoked")
    assert event.actor == "olivia"


def test_operator_cannot_revoke_another_operators_token(api_as):
    other, _ = create_operator(username="oscar", role="operator")
    theirs = create_api_token(user=other, name="theirs")
    response = api_as("admin").post(f"/api/v1/tokens/{theirs.token.pk}/revoke")
    assert response.status_code == 404
    assert ApiToken.objects.active().filter(pk=theirs.token.pk).exists()


def test_token_of_a_deactivated_operator_is_refused():
    user, _ = create_operator(username="olivia", role="operator")
    issued = create_api_token(user=user, name="ci")
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    response = Client().get("/api/v1/exports/", headers={"Authorization": f"Token {issued.raw}"})
    assert response.status_code == 401


def test_token_acts_with_the_operators_current_role(api_as):
    auditor = api_as("auditor")
    assert auditor.get("/api/v1/audit-events/").status_code == 200
    user = get_user_model().objects.get(username="auditor-api")
    user.groups.clear()
    assert auditor.get("/api/v1/audit-events/").status_code == 403


def test_token_name_is_required(api_as):
    response = api_as("operator").post("/api/v1/tokens/create", {"name": ""})
    assert response.status_code == 400
    assert response.json()["errors"] == {"name": ["This field may not be blank."]}


def test_session_calls_keep_csrf_protection():
    user, _ = create_operator(username="olivia", role="operator")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    response = browser.post("/api/v1/tokens/create", {"name": "x"}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not ApiToken.objects.exists()


def test_token_calls_need_no_csrf_token(api_as):
    client = api_as("operator")
    client.http = Client(enforce_csrf_checks=True)
    assert client.post("/api/v1/tokens/create", {"name": "x"}).status_code == 201


def test_command_prints_a_working_token_once():
    create_operator(username="olivia", role="auditor")
    out = StringIO()
    call_command("create_api_token", "--username", "olivia", "--name", "siem", stdout=out)
    raw = out.getvalue().rsplit(" ", 1)[1].strip()
    response = Client().get("/api/v1/audit-events/", headers={"Authorization": f"Token {raw}"})
    assert response.status_code == 200
    with pytest.raises(CommandError, match="No active operator"):
        call_command("create_api_token", "--username", "nobody", "--name", "x")


def test_token_values_never_reach_the_logs(console_client, caplog):
    caplog.set_level(logging.DEBUG)
    browser = console_client("operator")
    raw = browser.post(
        "/api/v1/tokens/create", {"name": "ci"}, content_type="application/json"
    ).json()["token"]
    Client().get("/api/v1/exports/", headers={"Authorization": f"Token {raw}"})
    Client().get("/api/v1/exports/", headers={"Authorization": f"Token {raw}x"})
    assert caplog.records
    assert raw not in caplog.text
