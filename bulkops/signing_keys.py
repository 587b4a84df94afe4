"""Key pairs bulkops signs SMART Backend Services assertions with: generated here (the
private half never leaves bulkops; the public JWKS is what gets registered at the server
that verifies them) or uploaded as a private JWK Set. Used for our keys at remote
servers and for the demo client `make run` registers. Only what SMART Backend Services
requires servers to accept: RS384 (RSA ≥ 2048) and ES384 (P-384).

No Django imports, so management commands, tests and benchmarks can make keys without
an app registry.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from bulkops import untrusted_json

ALGORITHMS = ("ES384", "RS384")
MIN_RSA_BITS = 2048
# Members that only private (or symmetric) keys carry (RFC 7518 §6).
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
MAX_UPLOAD_BYTES = 64 * 1024


class PrivateKeyError(Exception):
    """A private key bulkops cannot use; the message says why, for people."""


def generate_private_jwk(algorithm: str) -> dict[str, Any]:
    """A fresh private JWK for `algorithm`, with `kid` = its RFC 7638 thumbprint."""
    if algorithm == "RS384":
        jwk = RSAAlgorithm.to_jwk(
            rsa.generate_private_key(public_exponent=65537, key_size=3072), as_dict=True
        )
    elif algorithm == "ES384":
        jwk = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()), as_dict=True)
    else:
        raise PrivateKeyError(f"Choose {' or '.join(ALGORITHMS)}.")
    jwk.update(alg=algorithm, use="sig")
    jwk["kid"] = thumbprint(jwk)
    return jwk


def parse_private_jwks(text: str) -> dict[str, Any]:
    """The one usable private key in an uploaded JWK Set (or single JWK), with `alg` and
    `kid` filled in; PrivateKeyError saying why when there is none or more than one."""
    if len(text.encode()) > MAX_UPLOAD_BYTES:
        raise PrivateKeyError(f"A private JWK Set is at most {MAX_UPLOAD_BYTES // 1024} KB.")
    try:
        data = untrusted_json.loads(text)
    except ValueError as error:
        raise PrivateKeyError(f"Not valid JSON: {error}.") from None
    keys = data.get("keys") if isinstance(data, dict) and "keys" in data else [data]
    if not isinstance(keys, list) or not all(isinstance(key, dict) for key in keys):
        raise PrivateKeyError('Expected a JWK Set ({"keys": [...]}) or a single JWK object.')
    private = [key for key in keys if "d" in key]
    if not private:
        raise PrivateKeyError("The set holds no private key (a private JWK has a 'd' member).")
    if len(private) > 1:
        raise PrivateKeyError("The set holds several private keys; upload exactly one.")
    return _checked(private[0])


def public_jwks(private_jwk: dict[str, Any]) -> dict[str, Any]:
    """The JWK Set to register where our assertions are verified: the public half only."""
    public = {name: value for name, value in private_jwk.items() if name not in PRIVATE_MEMBERS}
    public["key_ops"] = ["verify"]
    return {"keys": [public]}


# The members an RFC 7638 thumbprint hashes, by key type (§3.2), in lexicographic order.
THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of the public members."""
    required = THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps({name: jwk[name] for name in required}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _checked(jwk: dict[str, Any]) -> dict[str, Any]:
    try:
        key = jwt.PyJWK(jwk).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as error:
        raise PrivateKeyError(f"The private key cannot be read: {error}.") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise PrivateKeyError(
                f"RSA keys need at least {MIN_RSA_BITS} bits; this one has {key.key_size}."
            )
        algorithm = "RS384"
    elif isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1):
        algorithm = "ES384"
    else:
        raise PrivateKeyError(
            "Only RSA (RS384) and EC P-384 (ES384) private keys can sign "
            "SMART Backend Services assertions."
        )
    if jwk.get("alg", algorithm) != algorithm:
        raise PrivateKeyError(f"The key says alg {jwk['alg']!r}; bulkops signs with {algorithm}.")
    checked = {**jwk, "alg": algorithm}
    checked.setdefault("kid", thumbprint(checked))
    return checked
