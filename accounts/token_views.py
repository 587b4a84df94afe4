"""The OAuth surface: POST /auth/token and SMART discovery (spec §7.1, §7.3–§7.7).

Every token endpoint response carries `Cache-Control: no-store` and `Pragma: no-cache`
(RFC 6749 §5.1), errors included. Assertions and tokens are never logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from accounts.assertions import (
    SignedAssertion,
    UnverifiedAssertion,
    accept_assertion,
    spend_jti,
    verify_signature,
)
from accounts.audit import client_ip
from accounts.oauth import (
    INVALID_CLIENT,
    INVALID_REQUEST,
    INVALID_SCOPE,
    UNSUPPORTED_GRANT_TYPE,
    OAuthError,
)
from accounts.services import issue_access_token, refuse_token_request
from accounts.throttle import check_token_rate
from bulkops.fhir.scopes import grant_scopes
from bulkops.fhir.smart import smart_configuration as smart_document
from bulkops.fhir_http import absolute_url, oversized_text

logger = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded"
CLIENT_CREDENTIALS = "client_credentials"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def token_endpoint_url(request: HttpRequest) -> str:
    """The token endpoint's absolute URL: what discovery and the CapabilityStatement
    advertise, and what an assertion's `aud` must be."""
    return absolute_url(request, reverse("token"))


@dataclass(frozen=True)
class TokenRequest:
    scope: str
    client_id: str | None


def request_form(request: HttpRequest) -> QueryDict | dict[str, str]:
    """The POSTed form, or OAuthError when the body is over Django's DATA_UPLOAD_* limits
    (BULKOPS_MAX_BODY_BYTES): such a request is refused before it is read."""
    if request.method != "POST":
        return {}
    try:
        return request.POST
    except (RequestDataTooBig, TooManyFieldsSent):
        raise OAuthError(
            INVALID_REQUEST, oversized_text(), "oversized_request", status=413
        ) from None


def parse_token_request(request: HttpRequest) -> TokenRequest:
    """The form fields of a client-credentials request, or OAuthError (spec §7.3, §7.5
    step 1): grant_type first, so a wrong one is always unsupported_grant_type."""
    if request.method != "POST":
        raise OAuthError(
            INVALID_REQUEST, "Use POST.", "wrong_method", status=405, headers={"Allow": "POST"}
        )
    if request.content_type != FORM:
        raise OAuthError(INVALID_REQUEST, f"Content-Type must be {FORM}.", "wrong_content_type")
    duplicated = [name for name, values in request.POST.lists() if len(values) > 1]
    if duplicated:
        raise OAuthError(
            INVALID_REQUEST, f"Repeated parameter: {', '.join(duplicated)}.", "duplicate_param"
        )
    form = request.POST
    for name in ("grant_type", "client_assertion_type", "client_assertion", "scope"):
        if not form.get(name, "").strip():
            raise OAuthError(INVALID_REQUEST, f"Missing parameter {name}.", f"missing_{name}")
    if form["grant_type"] != CLIENT_CREDENTIALS:
        raise OAuthError(
            UNSUPPORTED_GRANT_TYPE,
            f"grant_type must be {CLIENT_CREDENTIALS}.",
            "unsupported_grant_type",
        )
    if form["client_assertion_type"] != JWT_BEARER:
        raise OAuthError(
            INVALID_CLIENT, f"client_assertion_type must be {JWT_BEARER}.", "bad_assertion_type"
        )
    return TokenRequest(form["scope"], form.get("client_id"))


def oauth_json(
    body: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None
) -> JsonResponse:
    """A token endpoint response: never cached (RFC 6749 §5.1), errors included."""
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@csrf_exempt
def token(request: HttpRequest) -> HttpResponse:
    """POST /auth/token: a signed assertion in, a short-lived bearer token out."""
    now = timezone.now()
    claimed = scope = ""
    signed: SignedAssertion | None = None
    try:
        form = request_form(request)
        assertion = UnverifiedAssertion.read(form.get("client_assertion", ""))
        claimed = assertion.issuer
        scope = form.get("scope", "")
        check_token_rate(claimed_client_id=claimed, address=client_ip(request), now=now)
        parsed = parse_token_request(request)
        signed = verify_signature(assertion=assertion, client_id=parsed.client_id, now=now)
        verified = accept_assertion(signed, token_url=token_endpoint_url(request), now=now)
        client = verified.client
        # Spending the jti, the token and its audit row commit together: one commit per
        # token instead of three (docs/performance.md).
        with transaction.atomic():
            spend_jti(verified)
            scopes = grant_scopes(parsed.scope, client.scopes)
            if not scopes:
                raise OAuthError(
                    INVALID_SCOPE,
                    f"None of the requested scopes is allowed; this client may ask for "
                    f"{client.scopes}.",
                    "no_grantable_scope",
                )
            issued = issue_access_token(client=client, scopes=scopes, now=now, request=request)
    except OAuthError as error:
        # Once the client's own key has signed the request, a refusal is the client's
        # doing and counts against it; before, only against the address (throttle.py).
        refuse_token_request(
            claimed_client_id=claimed,
            signed=signed is not None,
            error=error,
            request=request,
            scope=scope,
        )
        logger.info(
            "token request refused",
            extra={"client_id": claimed, "status": error.status, "reason": error.reason},
        )
        return oauth_json(error.as_json(), status=error.status, headers=error.headers)
    logger.info("token issued", extra={"client_id": client.client_id})
    return oauth_json(
        {
            "access_token": issued.raw,
            "token_type": "bearer",
            "expires_in": issued.lifetime,
            "scope": " ".join(scopes),
        }
    )


@require_GET
def smart_configuration(request: HttpRequest) -> HttpResponse:
    """SMART discovery, always `application/json` whatever Accept says (spec §7.1)."""
    return JsonResponse(smart_document(token_url=token_endpoint_url(request)))
