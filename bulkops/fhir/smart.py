"""The SMART discovery document (spec §7.1), built from the token endpoint's URL."""

from __future__ import annotations

from typing import Any

from bulkops.fhir.resource_types import R4_RESOURCE_TYPES
from bulkops.fhir.scopes import OPERATION_SCOPES

SIGNING_ALGORITHMS = ("RS384", "ES384")


def supported_scopes() -> list[str]:
    """Every scope a client may be registered for and granted: v1 `read` and v2 `rs`,
    for all types and per R4 type (spec §7.1: each listed scope SHALL work), and
    system/bulk-submit."""
    types = ["*", *sorted(R4_RESOURCE_TYPES)]
    reads = [f"system/{name}.{permission}" for name in types for permission in ("read", "rs")]
    return reads + list(OPERATION_SCOPES)


def smart_configuration(*, token_url: str) -> dict[str, Any]:
    """`.well-known/smart-configuration` for a backend-services-only server.

    No `authorization_endpoint`: bulkops offers no app launch, and advertising one it
    cannot serve would be worse than the one Inferno discovery test it fails (spec §9).
    """
    return {
        "token_endpoint": token_url,
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGORITHMS),
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": supported_scopes(),
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
        "code_challenge_methods_supported": ["S256"],
    }
