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


def test_admin_updates_a_clients_name_scopes_and_groups(api_as, rsa_key, store):
    admin = api_as("admin")
    client_id = register(admin, rsa_key).json()["client_id"]
    response = admin.post(
        f"/api/v1/clients/{client_id}/update",
        {"name": "renamed", "scopes": ["system/Patient.rs"], "group_ids": ["g1"]},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["name"], body["scopes"], body["groups"]) == (
        "renamed",
        ["system/Patient.rs"],
        ["g1"],
    )
    event = AuditEvent.objects.get(action="client.updated")
    assert event.actor == "admin-api"
    assert event.details["changed"]["name"][1] == "renamed"
    bad = admin.post(f"/api/v1/clients/{client_id}/update", {"scopes": ["user/*.read"]})
    assert bad.status_code == 400
    assert list(bad.json()["errors"]) == ["scopes"]


def test_keys_rotate_by_adding_then_retiring(api_as, rsa_key, ec_key):
    admin = api_as("admin")
    client_id = register(admin, rsa_key).json()["client_id"]
    lonely = admin.post(f"/api/v1/clients/{client_id}/keys/retire", {"kid": "rsa-1"})
    assert lonely.status_code == 400
    assert list(lonely.json()["errors"]) == ["kid"]
    added = admin.post(f"/api/v1/clients/{client_id}/keys/add", {"jwk": ec_key.public_jwk})
    assert [k["kid"] for k in added.json()["keys"]] == ["rsa-1", "ec-1"]
    again = admin.post(f"/api/v1/clients/{client_id}/keys/add", {"jwk": ec_key.public_jwk})
    assert list(again.json()["errors"]) == ["jwk"]
    private = admin.post(f"/api/v1/clients/{client_id}/keys/add", {"jwk": ec_key.private_jwk})
    assert private.status_code == 400
    retired = admin.post(f"/api/v1/clients/{client_id}/keys/retire", {"kid": "rsa-1"})
    assert [k["kid"] for k in retired.json()["keys"]] == ["ec-1"]
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"client.key_added", "client.key_retired"} <= actions


def test_keys_of_a_jwks_uri_client_are_changed_at_the_uri(api_as, rsa_key, jwks_server):
    jwks_server.jwks = rsa_key.jwks()
    admin = api_as("admin")
    created = register(admin, rsa_key, jwks=None, jwks_uri=jwks_server.url)
    assert created.status_code == 201, created.content
    client_id = created.json()["client_id"]
    response = admin.post(f"/api/v1/clients/{client_id}/keys/retire", {"kid": "rsa-1"})
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "jwk": ["This client publishes its keys at its JWKS URL; rotate them there."]
    }


@pytest.mark.parametrize(
    ("since", "status"),
    [
        ("1546-07-27T14:07:19+16:13", 200),  # PostgreSQL refuses offsets beyond ±15:59
        ("0001-01-01T00:00:00+10:00", 400),  # before year 1 in UTC
        ("9999-12-31T23:00-05:00", 400),  # after year 9999 in UTC
    ],
)
def test_date_time_filters_are_normalised_to_utc_or_refused(api_as, since, status):
    """Found by schemathesis on PostgreSQL, where the first case was a 500."""
    admin = api_as("admin")
    for path in ("/api/v1/audit-events/", "/api/v1/exports/"):
        response = admin.get(path, since=since, before=since)
        assert response.status_code == status, (path, response.content)
        if status == 400:
            assert set(response.json()["errors"]) == {"since", "before"}
