"""Bearer tokens on a protected FHIR read (spec §7.8): 401 and 403 as OperationOutcomes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import AccessToken, BackendClient
from accounts.services import disable_client, issue_access_token, register_client
from tests.conftest import KeyPair
from tests.smart import get_token

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.accounts.bearer_urls")]

CHALLENGE = 'Bearer realm="bulkops"'
INVALID_TOKEN = 'Bearer realm="bulkops", error="invalid_token"'


@pytest.fixture
def client_a(rsa_key: KeyPair) -> BackendClient:
    return register_client(name="client a", jwks=rsa_key.jwks(), scopes="system/*.read")


def read(path: str, authorization: str | None = None) -> Any:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return Client().get(path, headers=headers)


def assert_outcome(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/fhir+json")
    issue = response.json()["issue"][0]
    assert issue["code"] == code
    return issue["diagnostics"]


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_valid_token_reads_with_any_scheme_case(
    scheme: str, rsa_key: KeyPair, client_a: BackendClient
) -> None:
    token = get_token(rsa_key, client_a.client_id)
    response = read("/fhir/Patient/p1", f"{scheme} {token}")
    assert response.status_code == 200
    body = response.json()
    assert body["meta"]["source"] == client_a.client_id
    assert body["scopes"] == ["system/*.read"]


@pytest.mark.parametrize("authorization", [None, "", "Basic dXNlcjpwYXNz"])
def test_missing_token_is_401_without_an_error_code(authorization: str | None) -> None:
    response = read("/fhir/Patient/p1", authorization)
    assert "Authorization: Bearer" in assert_outcome(response, 401, "login")
    assert response["WWW-Authenticate"] == CHALLENGE


@pytest.mark.parametrize("authorization", ["Bearer not-a-token", "Bearer", "Bearer  "])
def test_unknown_token_is_401_invalid_token(authorization: str, client_a: BackendClient) -> None:
    response = read("/fhir/Patient/p1", authorization)
    assert_outcome(response, 401, "login")
    assert response["WWW-Authenticate"] == INVALID_TOKEN


def test_expired_token_is_401_invalid_token(client_a: BackendClient) -> None:
    issued = issue_access_token(
        client=client_a, scopes=["system/*.read"], now=timezone.now() - timedelta(seconds=301)
    )
    response = read("/fhir/Patient/p1", f"Bearer {issued.raw}")
    assert "expired" in assert_outcome(response, 401, "login")
    assert response["WWW-Authenticate"] == INVALID_TOKEN


def test_disabled_clients_tokens_stop_working_at_once(
    rsa_key: KeyPair, client_a: BackendClient
) -> None:
    token = get_token(rsa_key, client_a.client_id)
    assert read("/fhir/Patient/p1", f"Bearer {token}").status_code == 200
    BackendClient.objects.filter(pk=client_a.pk).update(status=BackendClient.Status.DISABLED)
    assert_outcome(read("/fhir/Patient/p1", f"Bearer {token}"), 401, "login")


def test_disable_client_also_revokes_its_tokens(rsa_key: KeyPair, client_a: BackendClient) -> None:
    token = get_token(rsa_key, client_a.client_id)
    disable_client(client_id=client_a.client_id, actor=None)
    assert not AccessToken.objects.exists()
    assert_outcome(read("/fhir/Patient/p1", f"Bearer {token}"), 401, "login")


def test_scope_for_another_type_is_403_naming_the_missing_scope(rsa_key: KeyPair) -> None:
    client = register_client(
        name="observations", jwks=rsa_key.jwks(), scopes="system/Observation.read"
    )
    token = get_token(rsa_key, client.client_id, "system/Observation.read")
    assert read("/fhir/Observation/o1", f"Bearer {token}").status_code == 200
    diagnostics = assert_outcome(read("/fhir/Patient/p1", f"Bearer {token}"), 403, "forbidden")
    assert "system/Patient.read" in diagnostics
    assert "grants system/Observation.read" in diagnostics


@pytest.mark.parametrize(
    ("scope", "status"),
    [
        ("system/Patient.rs", 200),
        ("system/*.cruds", 200),
        ("system/Patient.s", 403),
        ("system/Patient.rs?identifier=http://x|1", 403),  # granular: not unrestricted read
    ],
)
def test_v2_and_granular_scopes_at_the_resource_server(
    scope: str, status: int, rsa_key: KeyPair
) -> None:
    client = register_client(name="v2", jwks=rsa_key.jwks(), scopes=scope)
    token = get_token(rsa_key, client.client_id, scope)
    assert read("/fhir/Patient/p1", f"Bearer {token}").status_code == status
