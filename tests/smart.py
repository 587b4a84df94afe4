"""Helpers for SMART Backend Services tests: real signed assertions, real token posts."""

from __future__ import annotations

import base64
import time
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from django.test import Client

from tests.conftest import KeyPair

TOKEN_URL = "http://testserver/auth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FORM = "application/x-www-form-urlencoded"
DROP = object()  # a claim or header value meaning "leave it out"


def sign_assertion(
    key: KeyPair,
    client_id: str,
    *,
    alg: str | None = None,
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A client assertion as a well-behaved client signs it; keyword arguments change or
    (with DROP) remove claims, `headers` changes or removes header fields."""
    now = int(time.time())
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "exp": now + 240,
        "jti": uuid.uuid4().hex,
        **claims,
    }
    header = {"kid": key.kid, "typ": "JWT", **(headers or {})}
    return jwt.encode(
        {k: v for k, v in body.items() if v is not DROP},
        key.private,
        algorithm=alg or key.alg,
        headers={k: v for k, v in header.items() if v is not DROP},
    )


def unsigned_assertion(client_id: str) -> str:
    """An assertion with `alg: none` and no signature, otherwise well formed."""
    return jwt.encode(
        {
            "iss": client_id,
            "sub": client_id,
            "aud": TOKEN_URL,
            "exp": int(time.time()) + 200,
            "jti": uuid.uuid4().hex,
        },
        None,
        algorithm="none",
        headers={"kid": "rsa-1"},
    )


def token_form(assertion: str, scope: str = "system/*.read", **fields: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        "scope": scope,
        **fields,
    }


def post_form(form: dict[str, Any], client: Client | None = None) -> Any:
    """POST as OAuth clients do: application/x-www-form-urlencoded (the test client's
    default, multipart, is refused by the token endpoint)."""
    return (client or Client()).post("/auth/token", urlencode(form, doseq=True), content_type=FORM)


def post_token(assertion: str, scope: str = "system/*.read", **fields: str) -> Any:
    return post_form(token_form(assertion, scope, **fields))


def assert_refused(response: Any, status: int, error: str) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == error
    assert body["error_description"]
    assert response["Cache-Control"] == "no-store"
    assert response["Pragma"] == "no-cache"


def assert_issued(response: Any, scope: str = "system/*.read") -> str:
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == scope
    assert response["Cache-Control"] == "no-store"
    assert response["Pragma"] == "no-cache"
    assert "refresh_token" not in body
    return body["access_token"]


def get_token(key: KeyPair, client_id: str, scope: str = "system/*.read") -> str:
    response = post_token(sign_assertion(key, client_id), scope)
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def certified(key: KeyPair, kid: str, not_after: datetime) -> tuple[KeyPair, dict[str, Any]]:
    """`key` under `kid`, and its public JWK carrying a self-signed x5c leaf certificate
    valid until `not_after`."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"bulkops test {kid}")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - timedelta(days=90))
        .not_valid_after(not_after)
        .sign(key.private, hashes.SHA256())
    )
    der = certificate.public_bytes(serialization.Encoding.DER)
    pair = KeyPair(key.private, kid, key.alg)
    return pair, {**pair.public_jwk, "x5c": [base64.b64encode(der).decode()]}
