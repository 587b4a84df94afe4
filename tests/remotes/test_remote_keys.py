"""Our key pairs for remote servers: generated or uploaded, stored encrypted, and good
enough that a SMART server (bulkops itself here) issues a token for them."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from accounts.services import register_client
from bulkops.signing_keys import PrivateKeyError, generate_private_jwk, parse_private_jwks
from exports.bulk_client import make_client_assertion
from remotes import crypto
from remotes.models import RemoteServer
from tests.smart import TOKEN_URL, post_form, token_form

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("algorithm", ["ES384", "RS384"])
def test_generated_key_gets_a_token_from_a_smart_server(algorithm):
    server = RemoteServer(name="self", base_url="http://testserver/fhir", client_id="x")
    server.set_private_jwk(generate_private_jwk(algorithm))
    server.save()
    client = register_client(name="us", jwks=server.public_jwks, scopes="system/*.read")
    server.client_id = client.client_id
    server.save()

    target = RemoteServer.objects.get(pk=server.pk).target()
    assertion = make_client_assertion(target.client_id, target.private_jwk, TOKEN_URL)
    response = post_form(token_form(assertion))

    assert response.status_code == 200, response.content
    assert response.json()["scope"] == "system/*.read"


def test_private_key_is_encrypted_at_rest_and_absent_from_the_public_half():
    private = generate_private_jwk("ES384")
    server = RemoteServer(name="r", base_url="https://fhir.example/r4", client_id="c")
    server.set_private_jwk(private)
    server.save()

    stored = RemoteServer.objects.values("private_key_encrypted", "public_jwks").get()
    assert private["d"] not in stored["private_key_encrypted"]
    assert "d" not in stored["public_jwks"]["keys"][0]
    assert stored["public_jwks"]["keys"][0]["kid"] == private["kid"]


def test_rotated_encryption_keys_still_open_old_secrets_and_a_lost_key_says_so(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.BULKOPS_ENCRYPTION_KEYS = [old]
    sealed = crypto.encrypt("secret")
    settings.BULKOPS_ENCRYPTION_KEYS = [new, old]
    assert crypto.decrypt(sealed) == "secret"
    settings.BULKOPS_ENCRYPTION_KEYS = [new]
    with pytest.raises(crypto.DecryptionError, match="cannot be decrypted"):
        crypto.decrypt(sealed)


def _jwk(private_key, **extra):
    algorithm = RSAAlgorithm if isinstance(private_key, rsa.RSAPrivateKey) else ECAlgorithm
    return {**algorithm.to_jwk(private_key, as_dict=True), **extra}


def test_uploaded_private_jwks_is_accepted_with_alg_and_kid_filled_in():
    key = _jwk(ec.generate_private_key(ec.SECP384R1()))
    parsed = parse_private_jwks(json.dumps({"keys": [key]}))
    assert parsed["alg"] == "ES384"
    assert parsed["kid"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "Not valid JSON"),
        (json.dumps({"keys": []}), "no private key"),
        (
            json.dumps({"keys": [_jwk(ec.generate_private_key(ec.SECP384R1()).public_key())]}),
            "no private key",
        ),
        (json.dumps(_jwk(rsa.generate_private_key(65537, 1024))), "at least 2048 bits"),  # noqa: S505
        (json.dumps(_jwk(ec.generate_private_key(ec.SECP256R1()))), "P-384"),
        (
            json.dumps(
                {"keys": [_jwk(ec.generate_private_key(ec.SECP384R1()), kid=k) for k in "ab"]}
            ),
            "several private keys",
        ),
        (json.dumps(_jwk(ec.generate_private_key(ec.SECP384R1()), alg="ES256")), "ES384"),
        (json.dumps({"keys": [{"kty": "RSA", "d": "x"}]}), "cannot be read"),
    ],
)
def test_unusable_uploads_are_refused_with_the_reason(text, message):
    with pytest.raises(PrivateKeyError, match=message):
        parse_private_jwks(text)
