"""The request-size limit for console uploads (BULKOPS_MAX_UPLOAD_BYTES).

Installed first in FILE_UPLOAD_HANDLERS, ahead of Django's temporary-file handler, so
every uploaded byte streams to a temporary file and none is kept in memory. A request
larger than the limit keeps its form fields (the CSRF token among them) but every file
in it is skipped unread into storage, and the refusal is left on the request for the
view to show next to the file field.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat

REFUSAL_ATTRIBUTE = "bulkops_upload_refused"


class UploadLimitHandler(FileUploadHandler):
    """Skips every file of a request whose body exceeds BULKOPS_MAX_UPLOAD_BYTES."""

    def handle_raw_input(
        self, input_data: Any, META: dict[str, Any], content_length: int, *args: Any
    ) -> None:
        limit = settings.BULKOPS_MAX_UPLOAD_BYTES
        if content_length > limit:
            setattr(
                self.request,
                REFUSAL_ATTRIBUTE,
                f"The upload is {filesizeformat(content_length)}; at most "
                f"{filesizeformat(limit)} can be uploaded at once. Upload fewer or smaller "
                "files, or load large files with manage.py load_fhir.",
            )

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        if upload_refusal(self.request):
            raise SkipFile

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def upload_refusal(request: HttpRequest) -> str:
    """Why the request's files were refused, or "" when they were accepted."""
    return getattr(request, REFUSAL_ATTRIBUTE, "")
