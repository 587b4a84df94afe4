"""Our public key set for one remote, served without sign-in at /jwks/<jwks_id>.json, so
the remote can register us by `jwks_uri` (as the SMART reference server and many others
do) and fetch our new key after it is replaced.

Anyone may fetch it, so it holds the public key members only (never a private member,
nor anything an uploaded key carried besides them: no names, no ids but `kid`). The
path names a random id rather than the remote, and an unknown id, a remote whose key
set an admin withdrew and a deleted remote all get the same 404, so the URL tells
nothing about which remotes exist or how many.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from remotes.models import RemoteServer

# RFC 7517/7518 public members of RSA and EC keys, and what a verifier uses to pick one.
PUBLIC_MEMBERS = ("kty", "crv", "x", "y", "n", "e", "kid", "alg", "use")
# Long enough to spare the remote refetching on every assertion, short enough that a
# replaced or withdrawn key leaves caches within minutes.
MAX_AGE = 300


def published_key_set(server: RemoteServer) -> dict[str, list[dict[str, Any]]]:
    """The server's public JWKS reduced to PUBLIC_MEMBERS."""
    return {
        "keys": [
            {name: key[name] for name in PUBLIC_MEMBERS if name in key}
            for key in server.public_jwks.get("keys", [])
        ]
    }


@require_safe
def published_jwks(request: HttpRequest, jwks_id: UUID) -> HttpResponse:
    server = RemoteServer.objects.filter(jwks_id=jwks_id, publish_jwks=True).first()
    if server is None:
        return _not_found()
    # application/json rather than RFC 7517's jwk-set+json: what key servers send and
    # every JWKS client reads.
    response = HttpResponse(json.dumps(published_key_set(server)), content_type="application/json")
    response["Cache-Control"] = f"public, max-age={MAX_AGE}"
    return response


def _not_found() -> HttpResponse:
    """One answer for every id that serves nothing: no page layout, no per-request
    token in it, so no two refusals differ."""
    response = HttpResponse(
        json.dumps({"error": "no public key set here"}), content_type="application/json", status=404
    )
    response["Cache-Control"] = "no-store"
    return response
