"""Bearer-token authentication for the FHIR API (spec §7.8).

`@require_bearer` sits under `@fhir_endpoint`, so its `FhirError`s become
OperationOutcomes. It puts the principal on the request: `request.client`,
`request.token_scopes` and `request.read_access` (see `FhirRequest`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from accounts.models import AccessToken, BackendClient, hash_token
from bulkops.fhir.outcome import FORBIDDEN, LOGIN, FhirError
from bulkops.fhir.scopes import ReadAccess, read_scope, readable_types

logger = logging.getLogger(__name__)

REALM = 'Bearer realm="bulkops"'

View = Callable[..., HttpResponse]


class FhirRequest(HttpRequest):
    """An HttpRequest that `require_bearer` has authenticated."""

    client: BackendClient
    token_scopes: list[str]
    read_access: ReadAccess


def _presented_token(request: HttpRequest) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive,
    RFC 7235), or None when there is no bearer credential at all."""
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip()


def _unauthorized(diagnostics: str, *, token_presented: bool) -> FhirError:
    # RFC 6750 §3: error="invalid_token" only when a token was sent.
    challenge = f'{REALM}, error="invalid_token"' if token_presented else REALM
    return FhirError(401, diagnostics, code=LOGIN, headers={"WWW-Authenticate": challenge})


def authenticate(request: HttpRequest) -> AccessToken:
    """The usable token the request presents, or a 401 FhirError."""
    raw = _presented_token(request)
    if raw is None:
        raise _unauthorized(
            "This endpoint needs an access token: send Authorization: Bearer <token> "
            "(get one from the token endpoint in .well-known/smart-configuration).",
            token_presented=False,
        )
    if raw:
        # get(), not first(): a unique hash needs no ORDER BY on every request.
        with suppress(AccessToken.DoesNotExist):
            return (
                AccessToken.objects.usable(timezone.now())
                .select_related("client")
                .get(token_hash=hash_token(raw))
            )
    raise _unauthorized(
        "The access token is unknown, expired or revoked; request a new one.",
        token_presented=True,
    )


def require_bearer(view: View) -> View:
    """Refuse the view to requests without a valid token of an active client."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        token = authenticate(request)
        fhir_request: FhirRequest = request  # type: ignore[assignment]
        fhir_request.client = token.client
        fhir_request.token_scopes = token.scope_list
        fhir_request.read_access = readable_types(token.scope_list)
        logger.debug("bearer accepted", extra={"client_id": token.client.client_id})
        return view(fhir_request, *args, **kwargs)

    return wrapped


def require_read(request: FhirRequest, resource_type: str) -> None:
    """403, naming the scope that is missing, unless the token may read the type."""
    if not request.read_access.allows(resource_type):
        raise FhirError(
            403,
            f"This token may not read {resource_type}: it needs {read_scope(resource_type)} "
            f"(or system/*.read), and grants {request.read_access.describe()}.",
            code=FORBIDDEN,
        )
