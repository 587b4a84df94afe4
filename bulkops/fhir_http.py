"""HTTP plumbing shared by every /fhir view: JSON responses and the error path."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt

from bulkops.fhir import resource_json
from bulkops.fhir.outcome import NOT_SUPPORTED, TOO_LONG, FhirError

logger = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
FHIR_NDJSON = "application/fhir+ndjson"

View = Callable[..., HttpResponse]


def fhir_json(
    body: dict[str, Any] | str | bytes,
    *,
    status: int = 200,
    content_type: str = FHIR_JSON,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    """A FHIR JSON response; `body` may already be serialised (stored resource bytes).
    A parsed body's decimals are written as parsed (bulkops.fhir.resource_json)."""
    if isinstance(body, dict):
        body = resource_json.dumps(body)
    response = HttpResponse(body, status=status, content_type=f"{content_type}; charset=utf-8")
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def empty_response(
    status: int, headers: dict[str, str] | None = None, *, location: str = ""
) -> HttpResponse:
    """A response without a body, and so without a Content-Type (Django would call
    the nothing text/html), as the spec's examples answer a status poll in progress
    (spec §2.1). `location` makes it a redirect."""
    response = HttpResponse(status=status)
    del response["Content-Type"]
    for name, value in (headers or {}).items():
        response[name] = value
    if location:
        response["Location"] = location
    return response


def fhir_endpoint(view: View) -> View:
    """Mark a FHIR API view: no CSRF (bearer-token API), and a raised `FhirError`
    becomes an OperationOutcome with its status and headers, as does a request body or
    query string over Django's DATA_UPLOAD_* limits (BULKOPS_MAX_BODY_BYTES) and a
    method the view does not take (Django's 405 has an empty text/html body)."""

    @csrf_exempt
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            response = view(request, *args, **kwargs)
            if not isinstance(response, HttpResponseNotAllowed):
                return response
            error = FhirError(
                405,
                f"{request.method} is not allowed here; use {response['Allow']}.",
                code=NOT_SUPPORTED,
                headers={"Allow": response["Allow"]},
            )
        except (RequestDataTooBig, TooManyFieldsSent):
            error = oversized_request()
        except FhirError as raised:
            error = raised
        logger.info("fhir request refused", extra={"path": request.path, "status": error.status})
        return fhir_json(error.outcome(), status=error.status, headers=error.headers)

    return wrapped


def oversized_text() -> str:
    """What to tell a client whose request passed Django's DATA_UPLOAD_* limits."""
    return (
        f"The request is too large: at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes of "
        f"body and {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} parameters are accepted."
    )


def oversized_request() -> FhirError:
    return FhirError(413, oversized_text(), code=TOO_LONG)


def absolute_url(request: HttpRequest, path: str) -> str:
    """An absolute URL on this server: BULKOPS_BASE_URL when set, else from the request."""
    if settings.BULKOPS_BASE_URL:
        return f"{settings.BULKOPS_BASE_URL}{path}"
    return request.build_absolute_uri(path)
