"""Admins manage operators through the operator API, with the console's services and
rules (tests/accounts/test_operator_management.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from accounts.models import AuditEvent
from accounts.services import create_api_token, create_operator
from tests.accounts.test_operator_management import LAST_ADMIN, signed_in, token_call, user

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", ["operator", "auditor", None])
def test_only_admins_manage_operators(api_as, role):
    olivia, _ = create_operator(username="olivia", role="operator")
    api = api_as(role)
    for path, body in (
        ("/api/v1/operators/create", {"username": "eve", "role": "admin"}),
        (f"/api/v1/operators/{olivia.pk}/set-role", {"role": "admin"}),
        (f"/api/v1/operators/{olivia.pk}/deactivate", {}),
    ):
        assert api.post(path, body).status_code == 403, path
    assert not get_user_model().objects.filter(username="eve").exists()
    assert user("olivia").is_active and user("olivia").groups.get().name == "operator"


def test_the_api_manages_operators_like_the_console(api_as):
    admin = api_as("admin")
    created = admin.post("/api/v1/operators/create", {"username": "ada", "role": "operator"})
    assert created.status_code == 201
    assert created["Cache-Control"] == "no-store"
    body = created.json()
    password = body.pop("password")
    assert {k: body[k] for k in ("username", "role", "is_active", "api_tokens")} == {
        "username": "ada",
        "role": "operator",
        "is_active": True,
        "api_tokens": 0,
    }
    ada_id = body["id"]
    assert signed_in("ada", password)

    listed = admin.get("/api/v1/operators/").json()["results"]
    assert [o["username"] for o in listed] == ["ada", "admin-api"]
    assert admin.get(f"/api/v1/operators/{ada_id}").json()["role"] == "operator"
    role = admin.post(f"/api/v1/operators/{ada_id}/set-role", {"role": "auditor"})
    assert role.json()["role"] == "auditor"

    token = create_api_token(user=user("ada"), name="script").raw
    off = admin.post(f"/api/v1/operators/{ada_id}/deactivate").json()
    assert (off["is_active"], off["api_tokens_revoked"], off["api_tokens"]) == (False, 1, 0)
    assert token_call(token) == 401
    assert admin.post(f"/api/v1/operators/{ada_id}/reactivate").json()["is_active"] is True

    reset = admin.post(f"/api/v1/operators/{ada_id}/reset-password")
    assert reset.json()["username"] == "ada" and reset["Cache-Control"] == "no-store"
    assert signed_in("ada", reset.json()["password"])
    mine = AuditEvent.objects.filter(actor="admin-api", action__startswith="operator.")
    actions = mine.values_list("action", flat=True)
    assert sorted(actions) == [
        "operator.created",
        "operator.deactivated",
        "operator.password_reset",
        "operator.reactivated",
        "operator.role_changed",
    ]


def test_the_api_refuses_bad_input_in_its_error_shape(api_as):
    admin = api_as("admin")
    answer = admin.post("/api/v1/operators/create", {"username": "a b", "role": "root"})
    assert answer.status_code == 400
    assert set(answer.json()["errors"]) == {"role"}
    answer = admin.post("/api/v1/operators/create", {"username": "a b", "role": "admin"})
    assert answer.status_code == 400
    assert answer.json()["errors"]["username"][0].startswith("Enter a valid username.")
    assert admin.post("/api/v1/operators/999999/deactivate").status_code == 404
    me = user("admin-api").pk
    demoted = admin.post(f"/api/v1/operators/{me}/set-role", {"role": "operator"})
    assert demoted.status_code == 400
    assert demoted.json()["errors"] == {"username": [f"admin-api {LAST_ADMIN}"]}
    assert user("admin-api").groups.get().name == "admin"
