"""Backend clients and the audit trail through the operator API."""

from __future__ import annotations

import pytest
from rest_framework.throttling import UserRateThrottle

from accounts.models import AuditEvent, BackendClient

pytestmark = pytest.mark.django_db


def register(api, rsa_key, **fields):
    body = {"name": "warehouse", "jwks": rsa_key.jwks(), "scopes": ["system/*.read"], **fields}
    return api.post("/api/v1/clients/create", body)


def test_admin_registers_a_client_and_reads_it_back(api_as, rsa_key):
    admin = api_as("admin")
    response = register(admin, rsa_key)
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["name"] == "warehouse"
    assert created["status"] == "active"
    assert created["scopes"] == ["system/*.read"]
    assert [key["kid"] for key in created["keys"]] == ["rsa-1"]
    event = AuditEvent.objects.get(action="client.registered")
    assert (event.actor_type, event.actor) == ("operator", "admin-api")
    detail = admin.get(f"/api/v1/clients/{created['client_id']}").json()
    assert detail == created


def test_disable_and_enable_are_audited_and_filterable(api_as, rsa_key):
    admin = api_as("admin")
    client_id = register(admin, rsa_key).json()["client_id"]
    disabled = admin.post(f"/api/v1/clients/{client_id}/disable")
    assert disabled.json()["status"] == "disabled"
    listed = admin.get("/api/v1/clients/", status="disabled").json()
    assert [c["client_id"] for c in listed["results"]] == [client_id]
    assert admin.post(f"/api/v1/clients/{client_id}/enable").json()["status"] == "active"
    actions = AuditEvent.objects.filter(actor="admin-api").values_list("action", flat=True)
    assert {"client.disabled", "client.enabled"} <= set(actions)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"scopes": ["patient/*.read"]}, "scopes"),
        ({"scopes": []}, "scopes"),
        ({"name": " "}, "name"),
        ({"jwks": None}, "jwks"),
        ({"jwks": {"keys": "nope"}}, "jwks"),
        ({"jwks_uri": "https://example.org/jwks.json"}, "jwks"),
        ({"group_ids": ["no such group"]}, "group_ids"),
        ({"jwks": None, "jwks_uri": "not a url"}, "jwks_uri"),
    ],
)
def test_bad_client_input_gets_400_naming_the_field(api_as, rsa_key, fields, field):
    response = register(api_as("admin"), rsa_key, **fields)
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert not BackendClient.objects.exists()


def test_unknown_client_is_404(api_as):
    response = api_as("admin").post("/api/v1/clients/nope/disable")
    assert response.status_code == 404
    assert response.json() == {"status": 404, "code": "not_found", "detail": "Not found."}


def test_audit_events_filter_and_page_by_cursor(api_as, rsa_key):
    admin = api_as("admin")
    for name in ("one", "two", "three"):
        register(admin, rsa_key, name=name)
    page = admin.get("/api/v1/audit-events/", action="client.registered", page_size=2).json()
    assert [e["details"]["name"] for e in page["results"]] == ["three", "two"]
    rest = admin.http.get(page["next"], headers=admin.headers).json()
    assert [e["details"]["name"] for e in rest["results"]] == ["one"]
    by_actor = admin.get("/api/v1/audit-events/", actor="admin-api", outcome="failure").json()
    assert by_actor["results"] == []


def test_audit_trail_is_read_only(api_as):
    response = api_as("admin").post("/api/v1/audit-events/", {"action": "forged"})
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_bad_cursor_and_filter_values_are_client_errors(api_as):
    admin = api_as("admin")
    assert admin.get("/api/v1/audit-events/", cursor="garbage").status_code == 404
    bad = admin.get("/api/v1/audit-events/", since="not-a-date", outcome="maybe")
    assert bad.status_code == 400
    assert set(bad.json()["errors"]) == {"since", "outcome"}


def test_calls_beyond_the_rate_limit_get_429(api_as, monkeypatch):
    monkeypatch.setitem(UserRateThrottle.THROTTLE_RATES, "user", "2/minute")
    auditor = api_as("auditor")
    assert [auditor.get("/api/v1/exports/").status_code for _ in range(3)] == [200, 200, 429]
    limited = auditor.get("/api/v1/exports/")
    assert limited.json()["code"] == "throttled"
    assert int(limited["Retry-After"]) > 0
