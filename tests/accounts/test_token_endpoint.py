"""POST /auth/token with real keys and real signed assertions (spec §7.3–§7.7)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from django.test import Client
from django.utils import timezone

from accounts.jwks import jwk_thumbprint
from accounts.models import AccessToken, AuditEvent, BackendClient, UsedAssertion, hash_token
from accounts.services import disable_client, register_client
from accounts.tasks import prune_used_assertions_task
from tests.conftest import JwksServer, KeyPair
from tests.smart import (
    DROP,
    TOKEN_URL,
    assert_issued,
    assert_refused,
    post_form,
    post_token,
    sign_assertion,
    token_form,
    unsigned_assertion,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def rsa_client(rsa_key: KeyPair) -> BackendClient:
    return register_client(name="RSA client", jwks=rsa_key.jwks(), scopes="system/*.read")


@pytest.fixture
def ec_client(ec_key: KeyPair) -> BackendClient:
    return register_client(name="EC client", jwks=ec_key.jwks(), scopes="system/*.read")


# --- happy paths -----------------------------------------------------------------------


@pytest.mark.parametrize("key_name", ["rsa_key", "ec_key"])
def test_inline_jwks_client_gets_a_token_for_rs384_and_es384(
    key_name: str, request: pytest.FixtureRequest
) -> None:
    key: KeyPair = request.getfixturevalue(key_name)
    client = register_client(name=key_name, jwks=key.jwks(), scopes="system/*.read")
    raw = assert_issued(post_token(sign_assertion(key, client.client_id)))
    stored = AccessToken.objects.get(client=client)
    assert stored.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert stored.scopes == "system/*.read"


@pytest.mark.parametrize("key_name", ["rsa_key", "ec_key"])
def test_jwks_uri_client_gets_a_token_for_rs384_and_es384(
    key_name: str, request: pytest.FixtureRequest, jwks_server: JwksServer
) -> None:
    key: KeyPair = request.getfixturevalue(key_name)
    jwks_server.jwks = key.jwks()
    client = register_client(name=key_name, jwks_uri=jwks_server.url, scopes="system/*.rs")
    assertion = sign_assertion(key, client.client_id, headers={"jku": jwks_server.url})
    assert_issued(post_token(assertion, "system/*.rs"), "system/*.rs")


def test_granted_scope_is_the_intersection_in_the_syntax_the_client_used(
    rsa_key: KeyPair,
) -> None:
    client = register_client(
        name="narrow", jwks=rsa_key.jwks(), scopes="system/Patient.read system/Observation.rs"
    )
    response = post_token(
        sign_assertion(rsa_key, client.client_id), "system/*.read launch openid system/Group.rs"
    )
    assert_issued(response, "system/Patient.read system/Observation.read")


def test_aud_may_be_a_list_and_client_id_may_repeat_the_issuer(
    rsa_key: KeyPair, rsa_client: BackendClient
) -> None:
    assertion = sign_assertion(
        rsa_key,
        rsa_client.client_id,
        aud=["http://other.example/token", "http://testserver/auth/token"],
    )
    assert_issued(post_token(assertion, client_id=rsa_client.client_id))


def test_aud_follows_bulkops_base_url(
    rsa_key: KeyPair, rsa_client: BackendClient, settings: Any
) -> None:
    settings.BULKOPS_BASE_URL = "https://bulk.example.org"
    good = sign_assertion(rsa_key, rsa_client.client_id, aud="https://bulk.example.org/auth/token")
    assert_issued(post_token(good))
    assert_refused(post_token(sign_assertion(rsa_key, rsa_client.client_id)), 401, "invalid_client")


def test_assertion_within_clock_skew_is_accepted(
    rsa_key: KeyPair, rsa_client: BackendClient
) -> None:
    now = int(time.time())
    assert_issued(post_token(sign_assertion(rsa_key, rsa_client.client_id, exp=now - 30)))
    assert_issued(post_token(sign_assertion(rsa_key, rsa_client.client_id, exp=now + 340)))


# --- rejections: each with the exact status and error code -----------------------------


def _hs384_with_public_key(key: KeyPair, client_id: str) -> str:
    """The classic algorithm-confusion attack: HMAC keyed with the public key's PEM."""
    secret = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    header = b64(json.dumps({"alg": "HS384", "typ": "JWT", "kid": key.kid}).encode())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": "http://testserver/auth/token",
        "exp": int(time.time()) + 200,
        "jti": "hs384",
    }
    payload = b64(json.dumps(claims).encode())
    signature = b64(hmac.new(secret, header + b"." + payload, hashlib.sha384).digest())
    return (header + b"." + payload + b"." + signature).decode()


# case: (audit reason code, how the bad assertion is made from key, forger's key, client_id)
ASSERTION_REJECTIONS: dict[str, tuple[str, Any]] = {
    "wrong key": ("bad_signature", lambda k, o, c: sign_assertion(o, c)),
    "wrong kid": ("no_key", lambda k, o, c: sign_assertion(k, c, headers={"kid": "nope"})),
    "missing kid": ("missing_kid", lambda k, o, c: sign_assertion(k, c, headers={"kid": DROP})),
    "missing typ": ("bad_typ", lambda k, o, c: sign_assertion(k, c, headers={"typ": None})),
    "alg none": ("bad_alg", lambda k, o, c: unsigned_assertion(c)),
    "HS384 signed with the public key": ("bad_alg", lambda k, o, c: _hs384_with_public_key(k, c)),
    "RS256": ("bad_alg", lambda k, o, c: sign_assertion(k, c, alg="RS256")),
    "missing exp": ("missing_exp", lambda k, o, c: sign_assertion(k, c, exp=DROP)),
    "expired exp": ("expired", lambda k, o, c: sign_assertion(k, c, exp=int(time.time()) - 120)),
    "exp too far ahead": (
        "exp_too_far",
        lambda k, o, c: sign_assertion(k, c, exp=int(time.time()) + 600),
    ),
    "exp not a number": ("bad_exp", lambda k, o, c: sign_assertion(k, c, exp="soon")),
    "nbf in the future": (
        "not_yet_valid",
        lambda k, o, c: sign_assertion(k, c, nbf=int(time.time()) + 200),
    ),
    "wrong aud": (
        "wrong_aud",
        lambda k, o, c: sign_assertion(k, c, aud="https://elsewhere/auth/token"),
    ),
    "missing aud": ("missing_aud", lambda k, o, c: sign_assertion(k, c, aud=DROP)),
    "iss differs from sub": (
        "sub_not_iss",
        lambda k, o, c: sign_assertion(k, c, sub="someone-else"),
    ),
    "unknown client": ("unknown_client", lambda k, o, c: sign_assertion(k, "no-such-client")),
    "missing jti": ("missing_jti", lambda k, o, c: sign_assertion(k, c, jti=DROP)),
    "malformed JWT": ("malformed_assertion", lambda k, o, c: "not.a.jwt"),
    "jku not the registered JWKS URL": (
        "jku_mismatch",
        lambda k, o, c: sign_assertion(k, c, headers={"jku": "https://attacker.example/jwks.json"}),
    ),
}


# Refusals of assertions the client's registered key signed: recorded as the client's own
# (they count towards its rate limit); the others only name it ("unverified").
SIGNED_REFUSALS = {
    "missing_exp",
    "exp_too_far",
    "bad_exp",
    "not_yet_valid",
    "wrong_aud",
    "missing_aud",
    "missing_jti",
}


@pytest.mark.parametrize("case", ASSERTION_REJECTIONS)
def test_bad_assertion_is_invalid_client_401(
    case: str, rsa_key: KeyPair, other_rsa_key: KeyPair, rsa_client: BackendClient
) -> None:
    reason, build = ASSERTION_REJECTIONS[case]
    assert_refused(
        post_token(build(rsa_key, other_rsa_key, rsa_client.client_id)), 401, "invalid_client"
    )
    assert not AccessToken.objects.exists()
    event = AuditEvent.objects.get(action="token.request")
    assert event.reason == reason
    assert event.actor_type == ("client" if reason in SIGNED_REFUSALS else "unverified")


def test_replayed_jti_is_invalid_client(rsa_key: KeyPair, rsa_client: BackendClient) -> None:
    assertion = sign_assertion(rsa_key, rsa_client.client_id)
    assert_issued(post_token(assertion))
    assert_refused(post_token(assertion), 401, "invalid_client")
    again = sign_assertion(
        rsa_key,
        rsa_client.client_id,
        jti=jwt.decode(assertion, options={"verify_signature": False})["jti"],
    )
    assert_refused(post_token(again), 401, "invalid_client")


def test_a_spent_jti_is_remembered_until_it_expires_then_pruned(
    rsa_key: KeyPair, rsa_client: BackendClient
) -> None:
    assertion = sign_assertion(rsa_key, rsa_client.client_id)
    assert_issued(post_token(assertion))
    (spent,) = UsedAssertion.objects.all()
    assert prune_used_assertions_task() == 0  # still replayable: kept
    assert_refused(post_token(assertion), 401, "invalid_client")
    UsedAssertion.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert prune_used_assertions_task() == 1
    assert not UsedAssertion.objects.filter(pk=spent.pk).exists()


def test_a_refused_scope_leaves_the_jti_unspent_and_no_token(
    rsa_key: KeyPair, rsa_client: BackendClient
) -> None:
    assertion = sign_assertion(rsa_key, rsa_client.client_id)
    assert_refused(post_token(assertion, scope="user/*.read"), 400, "invalid_scope")
    assert not UsedAssertion.objects.exists() and not AccessToken.objects.exists()
    assert_issued(post_token(assertion))


def test_the_same_jti_is_fine_for_another_client(
    rsa_key: KeyPair, ec_key: KeyPair, rsa_client: BackendClient, ec_client: BackendClient
) -> None:
    assert_issued(post_token(sign_assertion(rsa_key, rsa_client.client_id, jti="shared")))
    assert_issued(post_token(sign_assertion(ec_key, ec_client.client_id, jti="shared")))


def test_ec_key_cannot_verify_an_rs384_assertion_under_its_kid(
    ec_key: KeyPair, rsa_key: KeyPair, ec_client: BackendClient
) -> None:
    # kty must fit alg (spec §7.5 step 4): an RSA signature under the EC key's kid.
    assertion = sign_assertion(rsa_key, ec_client.client_id, headers={"kid": ec_key.kid})
    assert_refused(post_token(assertion), 401, "invalid_client")


def test_disabled_client_is_unauthorized_client(
    rsa_key: KeyPair, rsa_client: BackendClient
) -> None:
    disable_client(client_id=rsa_client.client_id, actor=None)
    assert_refused(
        post_token(sign_assertion(rsa_key, rsa_client.client_id)), 400, "unauthorized_client"
    )


def test_disabled_client_with_a_forged_assertion_learns_nothing(
    other_rsa_key: KeyPair, rsa_client: BackendClient
) -> None:
    disable_client(client_id=rsa_client.client_id, actor=None)
    assert_refused(
        post_token(sign_assertion(other_rsa_key, rsa_client.client_id)), 401, "invalid_client"
    )


def test_wrong_grant_type_is_unsupported_grant_type(
    rsa_key: KeyPair, rsa_client: BackendClient
) -> None:
    response = post_token(sign_assertion(rsa_key, rsa_client.client_id), grant_type="password")
    assert_refused(response, 400, "unsupported_grant_type")


def test_wrong_assertion_type_is_invalid_client(
    rsa_key: KeyPair, rsa_client: BackendClient
) -> None:
    response = post_token(
        sign_assertion(rsa_key, rsa_client.client_id),
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
    )
    assert_refused(response, 401, "invalid_client")


def test_client_id_naming_another_client_is_invalid_client(
    rsa_key: KeyPair, rsa_client: BackendClient, ec_client: BackendClient
) -> None:
    response = post_token(
        sign_assertion(rsa_key, rsa_client.client_id), client_id=ec_client.client_id
    )
    assert_refused(response, 401, "invalid_client")


@pytest.mark.parametrize(
    "scope", ["system/Observation.read", "patient/*.read launch openid", "system/*.write"]
)
def test_scope_outside_registration_is_invalid_scope(scope: str, rsa_key: KeyPair) -> None:
    client = register_client(name="patients", jwks=rsa_key.jwks(), scopes="system/Patient.read")
    assert_refused(
        post_token(sign_assertion(rsa_key, client.client_id), scope), 400, "invalid_scope"
    )


@pytest.mark.parametrize(
    "missing", ["grant_type", "client_assertion_type", "client_assertion", "scope"]
)
def test_missing_parameter_is_invalid_request(
    missing: str, rsa_key: KeyPair, rsa_client: BackendClient
) -> None:
    form = token_form(sign_assertion(rsa_key, rsa_client.client_id))
    del form[missing]
    assert_refused(post_form(form), 400, "invalid_request")


def test_json_body_is_invalid_request(rsa_key: KeyPair, rsa_client: BackendClient) -> None:
    form = token_form(sign_assertion(rsa_key, rsa_client.client_id))
    response = Client().post("/auth/token", json.dumps(form), content_type="application/json")
    assert_refused(response, 400, "invalid_request")


def test_repeated_parameter_is_invalid_request(rsa_key: KeyPair, rsa_client: BackendClient) -> None:
    form: dict[str, Any] = token_form(sign_assertion(rsa_key, rsa_client.client_id))
    form["scope"] = ["system/*.read", "system/Patient.read"]
    assert_refused(post_form(form), 400, "invalid_request")


def test_get_is_refused_with_405_and_no_store(rsa_client: BackendClient) -> None:
    response = Client().get("/auth/token")
    assert_refused(response, 405, "invalid_request")
    assert response["Allow"] == "POST"


# --- audit trail and secrets -----------------------------------------------------------


def test_every_token_request_is_audited_without_tokens_or_assertions(
    rsa_key: KeyPair,
    other_rsa_key: KeyPair,
    rsa_client: BackendClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    good = sign_assertion(rsa_key, rsa_client.client_id)
    raw = assert_issued(post_token(good))
    forged = sign_assertion(other_rsa_key, rsa_client.client_id)
    post_token(forged)
    stranger = sign_assertion(rsa_key, "made-up-client")
    post_token(stranger)

    events = list(AuditEvent.objects.filter(action="token.request").order_by("pk"))
    summary = [
        (e.actor_type, e.actor, e.outcome, e.reason, e.ip_address, e.details.get("error"))
        for e in events
    ]
    assert summary == [
        ("client", rsa_client.client_id, "success", "issued", "127.0.0.1", None),
        (
            "unverified",
            rsa_client.client_id,
            "failure",
            "bad_signature",
            "127.0.0.1",
            "invalid_client",
        ),
        (
            "unverified",
            "made-up-client",
            "failure",
            "unknown_client",
            "127.0.0.1",
            "invalid_client",
        ),
    ]
    everything = caplog.text + "".join(
        f"{e.actor}{e.reason}{json.dumps(e.details)}" for e in AuditEvent.objects.all()
    )
    for secret in (raw, hash_token(raw), good, forged, stranger):
        assert secret not in everything
    for signature in (good, forged, stranger):
        assert signature.rsplit(".", 1)[1] not in everything


# --- keys named by their RFC 7638 thumbprint ----------------------------------------------


def test_a_thumbprint_is_computed_as_rfc_7638_says() -> None:
    """The example of RFC 7638 §3.1."""
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc"
        "_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQ"
        "R0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bF"
        "TWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    jwk = {"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("key_name", ["rsa_key", "ec_key"])
def test_an_assertion_may_name_its_key_by_thumbprint(request, key_name: str) -> None:
    """cumulus-etl and smart-fetch sign with a PEM file and send the key's thumbprint as
    kid, whatever kid the operator registered the public key under."""
    key: KeyPair = request.getfixturevalue(key_name)
    client = register_client(name="PEM signer", jwks=key.jwks(), scopes="system/*.read")
    pem = key.private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    thumbprint = jwk_thumbprint(key.public_jwk)
    assert thumbprint and thumbprint != key.kid
    assertion = jwt.encode(
        {
            "iss": client.client_id,
            "sub": client.client_id,
            "aud": TOKEN_URL,
            "exp": int(time.time()) + 240,
            "jti": f"pem-{key_name}",
        },
        pem,
        algorithm=key.alg,
        headers={"kid": thumbprint, "typ": "JWT"},
    )
    assert_issued(post_token(assertion))
    another = register_client(name="other", jwks=key.jwks(), scopes="system/*.read")
    # A thumbprint that is no key's still names nothing.
    forged = sign_assertion(key, another.client_id, headers={"kid": thumbprint[:-2] + "xx"})
    assert_refused(post_token(forged), 401, "invalid_client")
