"""The demo backend client `make run` registers so a first export is one command away."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization

from accounts.models import BackendClient
from accounts.services import register_client
from bulkops.signing_keys import generate_private_jwk, public_jwks

DEMO_CLIENT_NAME = "demo-client"
DEMO_SCOPES = "system/*.read"


def ensure_demo_client(key_path: Path) -> BackendClient:
    """Register the demo client once; its private key goes to `key_path` (mode 0600)
    and never into the database.

    The key is written the two ways bulk clients read one: `key_path` is a JWK Set whose
    key says `key_ops: ["sign"]` (how cumulus-etl and smart-fetch pick the signing key
    of a set; `bulk_export` reads it too), and a PEM file beside it (`.pem`), which
    clients sign with under the key's RFC 7638 thumbprint, its kid here as well.
    """
    existing = BackendClient.objects.filter(name=DEMO_CLIENT_NAME).first()
    if existing is not None and key_path.exists():
        return existing
    private_jwk = generate_private_jwk("ES384")
    client = register_client(
        name=DEMO_CLIENT_NAME, jwks=public_jwks(private_jwk), scopes=DEMO_SCOPES
    )
    signing_jwk = {**private_jwk, "key_ops": ["sign"]}
    pem = jwt.PyJWK(private_jwk).key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(key_path, json.dumps({"keys": [signing_jwk]}).encode())
    _write_private(key_path.with_suffix(".pem"), pem)
    return client


def _write_private(path: Path, content: bytes) -> None:
    """Write `content` to a fresh file only its owner can read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
