"""SMART discovery (spec §7.1): JSON, absolute URLs, the same document at both paths."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from bulkops.fhir.scopes import parse_scope


@pytest.mark.parametrize(
    "path", ["/fhir/.well-known/smart-configuration", "/.well-known/smart-configuration"]
)
def test_discovery_is_json_with_the_backend_services_fields(path: str) -> None:
    response = Client().get(path, headers={"Accept": "application/fhir+json"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    config = response.json()
    assert config["token_endpoint"] == "http://testserver/auth/token"
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert config["grant_types_supported"] == ["client_credentials"]
    assert "client-confidential-asymmetric" in config["capabilities"]
    assert {"system/*.read", "system/*.rs", "system/Patient.read"} <= set(
        config["scopes_supported"]
    )
    resource_scopes = [s for s in config["scopes_supported"] if s != "system/bulk-submit"]
    assert "system/bulk-submit" in config["scopes_supported"]
    assert all(parse_scope(scope) for scope in resource_scopes)
    assert "authorization_endpoint" not in config


def test_discovery_urls_have_names() -> None:
    assert reverse("fhir:smart-configuration") == "/fhir/.well-known/smart-configuration"
    assert reverse("smart-configuration") == "/.well-known/smart-configuration"
    assert reverse("token") == "/auth/token"


def test_token_endpoint_uses_bulkops_base_url_when_set(settings: Any) -> None:
    settings.BULKOPS_BASE_URL = "https://bulk.example.org"
    config = Client().get("/fhir/.well-known/smart-configuration").json()
    assert config["token_endpoint"] == "https://bulk.example.org/auth/token"
