"""Registering and disabling backend clients; keys from inline sets and jwks_uri."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import AuditEvent, BackendClient, CachedJwks, new_client_id
from accounts.services import register_client
from fhirstore.groups import upsert_group
from fhirstore.writes import put_resource
from tests.conftest import JwksServer, KeyPair
from tests.smart import post_token, sign_assertion

pytestmark = pytest.mark.django_db


def registration_errors(**kwargs: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        register_client(**{"name": "c", "scopes": "system/*.read", **kwargs})
    assert not BackendClient.objects.exists()
    return caught.value.message_dict


def test_jwks_with_a_private_key_is_refused_with_a_clear_message(rsa_key: KeyPair) -> None:
    errors = registration_errors(jwks={"keys": [rsa_key.private_jwk]})
    assert "private key material" in errors["jwks"][0]
    assert "'rsa-1'" in errors["jwks"][0]


def test_undersized_rsa_key_is_refused() -> None:
    weak = rsa.generate_private_key(65537, 1024)  # noqa: S505 - the point of the test
    small = KeyPair(weak, "small", "RS384")
    errors = registration_errors(jwks=small.jwks())
    assert "RSA key is 1024 bits; at least 2048 are required" in errors["jwks"][0]


def test_ec_key_on_another_curve_is_refused() -> None:
    p256 = KeyPair(ec.generate_private_key(ec.SECP256R1()), "p256", "ES384")
    jwk = {**p256.public_jwk, "alg": "ES256"}
    errors = registration_errors(jwks={"keys": [jwk]})
    assert "EC curve P-256 is not P-384" in errors["jwks"][0]


@pytest.mark.parametrize(
    ("jwks", "message"),
    [
        ({"keys": []}, 'non-empty "keys" array'),
        ([], 'non-empty "keys" array'),
        ({"keys": [{"kty": "RSA"}]}, "non-empty kid"),
        ({"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}, "private key material"),
    ],
)
def test_malformed_jwks_is_refused(jwks: Any, message: str) -> None:
    assert message in registration_errors(jwks=jwks)["jwks"][0]


def test_duplicate_kids_are_refused(rsa_key: KeyPair, ec_key: KeyPair) -> None:
    jwks = {"keys": [rsa_key.public_jwk, {**ec_key.public_jwk, "kid": rsa_key.kid}]}
    assert "repeats" in registration_errors(jwks=jwks)["jwks"][0]


def test_field_errors_are_reported_together(rsa_key: KeyPair) -> None:
    errors = registration_errors(
        name=" ", jwks=rsa_key.jwks(), scopes="system/*.read patient/*.read", group_ids=["a b"]
    )
    assert set(errors) == {"name", "scopes", "group_ids"}
    assert "patient/*.read" in errors["scopes"][0]


def test_both_or_neither_key_source_is_refused(rsa_key: KeyPair) -> None:
    assert "exactly one" in registration_errors()["jwks"][0]
    assert (
        "exactly one" in registration_errors(jwks=rsa_key.jwks(), jwks_uri="https://x/")["jwks"][0]
    )


def test_unusable_keys_beside_a_usable_one_are_listed_as_ignored(
    rsa_key: KeyPair, ec_key: KeyPair, tmp_path: Path
) -> None:
    encryption_key = {**ec_key.public_jwk, "kid": "enc", "use": "enc"}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [rsa_key.public_jwk, encryption_key]}))
    out = StringIO()
    call_command(
        "register_client",
        "--name",
        "Two keys",
        "--jwks-file",
        str(path),
        "--scopes",
        "system/*.read",
        stdout=out,
    )
    lines = out.getvalue().splitlines()
    assert "kid 'rsa-1': RSA key, verifies RS384" in lines[1]
    assert "kid 'enc': ignored, use enc is not sig" in lines[2]
    assert BackendClient.objects.get().client_id == lines[-1]


def test_register_client_command_prints_json_with_groups_and_kids(
    ec_key: KeyPair, tmp_path: Path
) -> None:
    put_resource(
        resource_type="Patient",
        resource_id="p1",
        body={"resourceType": "Patient"},
        now=timezone.now(),
    )
    for group_id in ("g1", "g2"):
        upsert_group(group_id=group_id, name=group_id, patient_ids=["p1"], actor="ada")
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(ec_key.jwks()))
    out = StringIO()
    call_command(
        "register_client",
        "--name",
        "Registry",
        "--jwks-file",
        str(path),
        "--scopes",
        "system/Patient.rs system/Group.read",
        "--group",
        "g1",
        "--group",
        "g2",
        "--json",
        stdout=out,
    )
    summary = json.loads(out.getvalue())
    client = BackendClient.objects.get()
    assert summary == {
        "client_id": client.client_id,
        "name": "Registry",
        "scopes": ["system/Patient.rs", "system/Group.read"],
        "groups": ["g1", "g2"],
        "jwks_uri": None,
        "keys": [{"kid": "ec-1", "kty": "EC", "alg": "ES384", "problem": ""}],
    }
    event = AuditEvent.objects.get(action="client.registered")
    assert event.actor == "system"
    assert event.details["kids"] == ["ec-1"]


def test_register_client_command_refuses_a_private_jwks_file(
    rsa_key: KeyPair, tmp_path: Path
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [rsa_key.private_jwk]}))
    with pytest.raises(CommandError, match="jwks: Key 'rsa-1' contains private key material"):
        call_command(
            "register_client", "--name", "x", "--jwks-file", str(path), "--scopes", "system/*.read"
        )


def test_client_ids_are_random_and_url_safe(rsa_key: KeyPair) -> None:
    ids = {
        register_client(name=f"c{n}", jwks=rsa_key.jwks(), scopes="system/*.read").client_id
        for n in range(3)
    }
    assert len(ids) == 3
    assert all(len(i) >= 32 and i.replace("-", "").replace("_", "").isalnum() for i in ids)


def test_disable_client_command_stops_new_tokens_and_is_audited(
    rsa_key: KeyPair,
) -> None:
    client = register_client(name="c", jwks=rsa_key.jwks(), scopes="system/*.read")
    out = StringIO()
    call_command("disable_client", client.client_id, stdout=out)
    assert "Disabled client 'c'" in out.getvalue()
    client.refresh_from_db()
    assert not client.is_active
    assert AuditEvent.objects.get(action="client.disabled").details["client_id"] == client.client_id
    assert post_token(sign_assertion(rsa_key, client.client_id)).json()["error"] == (
        "unauthorized_client"
    )
    with pytest.raises(CommandError, match="No client has client_id 'nope'"):
        call_command("disable_client", "nope")


# --- jwks_uri: https only, cached per Cache-Control, refetched on an unknown kid -----------


def test_http_jwks_uri_is_refused_unless_allowed(
    rsa_key: KeyPair, jwks_server: JwksServer, settings: Any
) -> None:
    settings.BULKOPS_ALLOW_HTTP_JWKS = False
    jwks_server.jwks = rsa_key.jwks()
    assert "must use https" in registration_errors(jwks_uri=jwks_server.url)["jwks_uri"][0]
    assert jwks_server.hits == 0


def test_http_jwks_uri_stops_working_when_http_is_no_longer_allowed(
    rsa_key: KeyPair, jwks_server: JwksServer, settings: Any
) -> None:
    jwks_server.jwks = rsa_key.jwks()
    client = register_client(name="c", jwks_uri=jwks_server.url, scopes="system/*.read")
    CachedJwks.objects.all().delete()
    settings.BULKOPS_ALLOW_HTTP_JWKS = False
    response = post_token(sign_assertion(rsa_key, client.client_id))
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")


def test_unreachable_or_oversized_jwks_uri_is_refused_at_registration(
    jwks_server: JwksServer, rsa_key: KeyPair
) -> None:
    jwks_server.jwks = rsa_key.jwks()
    jwks_server.extra_bytes = 70_000
    assert "larger than" in registration_errors(jwks_uri=jwks_server.url)["jwks_uri"][0]
    closed = "http://127.0.0.1:9/jwks.json"
    assert "Could not fetch" in registration_errors(jwks_uri=closed)["jwks_uri"][0]


def test_jwks_uri_redirects_are_not_followed(jwks_server: JwksServer, rsa_key: KeyPair) -> None:
    jwks_server.jwks = rsa_key.jwks()
    redirecting = jwks_server.url.replace("/jwks.json", "/redirect")
    assert "Could not fetch" in registration_errors(jwks_uri=redirecting)["jwks_uri"][0]
    assert jwks_server.hits == 1


def test_jwks_is_cached_for_max_age_and_shared_by_token_requests(
    rsa_key: KeyPair, jwks_server: JwksServer
) -> None:
    jwks_server.jwks, jwks_server.cache_control = rsa_key.jwks(), "public, max-age=600"
    client = register_client(name="c", jwks_uri=jwks_server.url, scopes="system/*.read")
    for _ in range(3):
        assert post_token(sign_assertion(rsa_key, client.client_id)).status_code == 200
    assert jwks_server.hits == 1


@pytest.mark.parametrize("cache_control", ["", "no-store", "no-cache, max-age=600", "max-age=0"])
def test_jwks_without_a_cache_lifetime_is_fetched_every_time(
    cache_control: str, rsa_key: KeyPair, jwks_server: JwksServer
) -> None:
    jwks_server.jwks, jwks_server.cache_control = rsa_key.jwks(), cache_control
    client = register_client(name="c", jwks_uri=jwks_server.url, scopes="system/*.read")
    for _ in range(2):
        assert post_token(sign_assertion(rsa_key, client.client_id)).status_code == 200
    assert jwks_server.hits == 3


def test_rotated_key_is_picked_up_by_one_refetch_on_unknown_kid(
    rsa_key: KeyPair, ec_key: KeyPair, jwks_server: JwksServer
) -> None:
    jwks_server.jwks, jwks_server.cache_control = rsa_key.jwks(), "max-age=3600"
    client = register_client(name="c", jwks_uri=jwks_server.url, scopes="system/*.read")
    jwks_server.jwks = ec_key.jwks()  # the client rotates to a new key
    assert post_token(sign_assertion(ec_key, client.client_id)).status_code == 200
    assert jwks_server.hits == 2
    response = post_token(sign_assertion(ec_key, client.client_id, headers={"kid": "unknown"}))
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
    assert jwks_server.hits == 3  # exactly one refetch for the unknown kid


def test_jwks_uri_that_starts_serving_a_private_key_is_not_used(
    rsa_key: KeyPair, jwks_server: JwksServer
) -> None:
    jwks_server.jwks = rsa_key.jwks()
    client = register_client(name="c", jwks_uri=jwks_server.url, scopes="system/*.read")
    jwks_server.jwks = {"keys": [rsa_key.private_jwk]}
    response = post_token(sign_assertion(rsa_key, client.client_id))
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")


def test_binding_a_client_to_an_unknown_group_is_refused(ec_key: KeyPair) -> None:
    with pytest.raises(ValidationError) as caught:
        register_client(name="x", jwks=ec_key.jwks(), scopes="system/*.read", group_ids=["nope"])
    assert caught.value.message_dict == {"group_ids": ["No such Group: nope."]}
    assert not BackendClient.objects.exists()


def test_client_ids_are_letters_and_digits_so_they_never_read_as_cli_options() -> None:
    ids = {new_client_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and i.isascii() and i.isalnum() for i in ids)
