"""The demo backend client `make run` registers so a first export is one command away."""

from __future__ import annotations

import json
import os
from pathlib import Path

from accounts.models import BackendClient
from accounts.services import register_client
from bulkops.signing_keys import generate_private_jwk, public_jwks

DEMO_CLIENT_NAME = "demo-client"
DEMO_SCOPES = "system/*.read"


def ensure_demo_client(key_path: Path) -> BackendClient:
    """Register the demo client once; its private key goes to `key_path` (mode 0600)
    and never into the database."""
    existing = BackendClient.objects.filter(name=DEMO_CLIENT_NAME).first()
    if existing is not None and key_path.exists():
        return existing
    private_jwk = generate_private_jwk("ES384")
    client = register_client(
        name=DEMO_CLIENT_NAME, jwks=public_jwks(private_jwk), scopes=DEMO_SCOPES
    )
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.unlink(missing_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"keys": [private_jwk]}, handle)
    return client
