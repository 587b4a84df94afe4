"""A job whose output storage was removed from the settings answers 503 with a clear
message instead of a 500: its files still exist there, out of this server's reach, until
BULKOPS_OUTPUT_STORAGES names the storage again.

Every view that reads, signs or serves a job's files looks its storage up by name
(exports.storage.job_storage); this middleware turns the one error that lookup raises
into each surface's own error format (FHIR OperationOutcome, operator API error body,
console page), so no view carries a try/except for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from bulkops.unavailable import unavailable_response
from exports.storage import UnknownStorage

logger = logging.getLogger(__name__)

CLIENT_MESSAGE = (
    "This export's files are in an output storage this server no longer has configured; "
    "its operators can restore it."
)


class MissingStorageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, UnknownStorage):
            return None
        logger.error("output storage not configured", extra={"storage": exception.name})
        if request.path.startswith("/fhir"):
            # A backend client is told no more than that: storage names are the operators'.
            return unavailable_response(request.path, CLIENT_MESSAGE)
        return unavailable_response(
            request.path,
            f"This export's files are in the output storage {exception.name!r}, which "
            "BULKOPS_OUTPUT_STORAGES no longer configures; add it back to reach them.",
        )
