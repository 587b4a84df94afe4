"""A backend client's key obtains access tokens, so only operators who may manage
clients (admins) create one, by whichever path: the console's registration page, the
operator API, "Check this bulkops" (which registers its own key) and the service they
all go through. The command line (`register_client`, the demo seed) passes no operator:
whoever runs manage.py holds the database anyway."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied

from accounts.models import BackendClient
from accounts.services import register_client
from remotes.models import RemoteServer

pytestmark = pytest.mark.django_db


def console_form(jwks: dict) -> dict:
    return {
        "name": "Registry",
        "syntax": "v1",
        "scope_types": ["Patient"],
        "jwks": json.dumps(jwks),
    }


def api_body(jwks: dict) -> dict:
    return {"name": "warehouse", "jwks": jwks, "scopes": ["system/*.read"]}


def test_an_operator_creates_no_client_by_any_path(console_client, api_as, rsa_key) -> None:
    browser, api = console_client("operator"), api_as("operator")

    assert browser.post("/clients/new/", console_form(rsa_key.jwks())).status_code == 403
    assert api.post("/api/v1/clients/create", api_body(rsa_key.jwks())).status_code == 403
    assert browser.post("/remotes/self-check/").status_code == 403
    operator = get_user_model().objects.get(username="operator-user")
    with pytest.raises(PermissionDenied):
        register_client(
            name="by hand", jwks=rsa_key.jwks(), scopes="system/*.read", created_by=operator
        )

    assert not BackendClient.objects.exists()
    assert not RemoteServer.objects.exists()


def test_an_admin_creates_clients_by_every_path(console_client, api_as, rsa_key) -> None:
    browser, api = console_client("admin"), api_as("admin")

    assert browser.post("/clients/new/", console_form(rsa_key.jwks())).status_code == 302
    assert api.post("/api/v1/clients/create", api_body(rsa_key.jwks())).status_code == 201
    assert browser.post("/remotes/self-check/").status_code == 302
    admin = get_user_model().objects.get(username="admin-user")
    register_client(name="by hand", jwks=rsa_key.jwks(), scopes="system/*.read", created_by=admin)

    names = set(BackendClient.objects.values_list("name", flat=True))
    assert names == {"Registry", "warehouse", "bulkops self-check", "by hand"}
    self_check = RemoteServer.objects.get(name="this-bulkops")
    assert self_check.local_client.name == "bulkops self-check"
