"""A database that cannot be reached answers 503 with Retry-After, in each surface's own
error format, instead of a 500 with a traceback.

Clients of a bulk export server retry 503s (spec: transient errors); a 500 tells them the
request itself was bad. The FHIR API answers with an OperationOutcome, the token
endpoint with RFC 6749's `temporarily_unavailable`, the operator API with its error body,
the console with a short page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

from bulkops.fhir.outcome import TRANSIENT, FhirError
from bulkops.fhir_http import fhir_json

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 10
MESSAGE = "bulkops cannot reach its database right now; try again shortly."


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.error(
            "database unavailable", extra={"path": request.path, "error": type(exception).__name__}
        )
        response = unavailable_response(request.path)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


def unavailable_response(path: str, message: str = MESSAGE) -> HttpResponse:
    """A 503 saying `message` in the error format of the surface `path` belongs to."""
    if path.startswith("/fhir"):
        error = FhirError(503, message, code=TRANSIENT)
        return fhir_json(error.outcome(), status=503)
    if path.startswith("/auth/"):
        body = {"error": "temporarily_unavailable", "error_description": message}
        return JsonResponse(body, status=503)
    if path.startswith("/api/"):
        return JsonResponse({"status": 503, "code": "unavailable", "detail": message}, status=503)
    return HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
