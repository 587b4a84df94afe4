"""OAuth 2.0 error codes the token endpoint answers with (RFC 6749 §5.2, spec §7.7)."""

from __future__ import annotations

from dataclasses import dataclass, field

INVALID_REQUEST = "invalid_request"
INVALID_CLIENT = "invalid_client"
INVALID_SCOPE = "invalid_scope"
UNAUTHORIZED_CLIENT = "unauthorized_client"
UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"


@dataclass
class OAuthError(Exception):
    """A refused token request: the RFC 6749 `error` code, a description the client
    sees, and a short `reason` code for the audit trail and rate limiting.

    Status: 401 for invalid_client (spec §7.7), else 400, unless given (429 when
    rate-limited, 405 for a wrong method).
    """

    error: str
    description: str
    reason: str
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.description)
        if not self.status:
            self.status = 401 if self.error == INVALID_CLIENT else 400

    def as_json(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def invalid_client(reason: str, description: str) -> OAuthError:
    """Any failure to authenticate the client's assertion (spec §7.5 step 9)."""
    return OAuthError(INVALID_CLIENT, description, reason)
