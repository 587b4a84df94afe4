"""Plumbing every operator API view shares: the base view, one error body shape,
pagination, and the OpenAPI additions that document them.

Every error a client sees, whatever raised it, has the same JSON shape (`ErrorBody`):
`{"status": 403, "code": "permission_denied", "detail": "…", "errors": {...}}`, where
`errors` (field → messages) appears only on validation failures. Services raise
Django's ValidationError or FhirError; the handler translates both, so views carry no
try/except and bad input is a 400 with field errors, never a 500.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypedDict

import django_filters
from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django_filters.fields import IsoDateTimeField
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from rest_framework import exceptions, generics, serializers
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from bulkops.errors import InvalidRequest
from bulkops.fhir.outcome import FhirError

ERROR_STATUSES = ("400", "401", "403", "404", "429")


class ErrorBody(TypedDict, total=False):
    status: int
    code: str
    detail: str
    errors: dict[str, list[str]]


class RoleRequired:
    """Reading needs `read_permission` (the console role when a view names none),
    changing needs `write_permission`: console codenames that the default permission
    class (REST_FRAMEWORK in settings, accounts.api_auth.RolePermission) enforces."""

    write_permission: str = ""


class OperatorApi(RoleRequired, APIView):
    """Base of operator API views that validate → call a service → respond."""


class OperatorListApi(RoleRequired, generics.ListAPIView):
    """Base of list views: DRF's generic list gives filtering and pagination that the
    schema documents, so scripts and schemathesis see every query parameter."""


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Documents the token scheme in the OpenAPI schema."""

    target_class = "accounts.api_auth.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "A personal API token: `Authorization: Token <token>`.",
        }


class OperatorAutoSchema(AutoSchema):
    """Names nested HackSoft serializers after their view: `ClientCreateApi.
    InputSerializer` becomes the component `ClientCreateInput`, not a clashing `Input`."""

    def get_serializer_name(self, serializer: Any, direction: str) -> str:
        outer, _, inner = type(serializer).__qualname__.rpartition(".")
        if outer:
            return outer.rsplit(".", 1)[-1].removesuffix("Api") + inner
        return super().get_serializer_name(serializer, direction)


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """`data` checked by `serializer_class`; a ValidationError (400 with field errors)
    otherwise. Views call this first, then a service."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class RequestTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "too_large"

    def __init__(self) -> None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        super().__init__(f"The request body is larger than {limit} bytes.")


def _translate(exc: Exception) -> Exception:
    """Django's and our services' exceptions as the DRF exceptions with the same meaning."""
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, RequestDataTooBig):  # over BULKOPS_MAX_BODY_BYTES
        return RequestTooLarge()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            return exceptions.ValidationError(exc.message_dict)
        return exceptions.ValidationError({"non_field_errors": exc.messages})
    if isinstance(exc, InvalidRequest):
        return exceptions.ValidationError({"non_field_errors": [str(exc)]})
    if isinstance(exc, FhirError):
        error = exceptions.APIException(exc.diagnostics, code=exc.code)
        error.status_code = exc.status
        return error
    return exc


def _flatten(detail: Any) -> dict[str, list[str]]:
    """Field errors as field → list of messages; nested errors get dotted names."""
    if isinstance(detail, list):
        return {"non_field_errors": [str(item) for item in detail]}
    flat: dict[str, list[str]] = {}
    for name, value in detail.items():
        if isinstance(value, dict):
            flat.update({f"{name}.{key}": msgs for key, msgs in _flatten(value).items()})
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for index, item in enumerate(value):
                flat.update({f"{name}.{index}.{k}": m for k, m in _flatten(item).items()})
        else:
            flat[name] = [str(item) for item in value] if isinstance(value, list) else [str(value)]
    return flat


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, then reshape the body to ErrorBody."""
    original, exc = exc, _translate(exc)
    response = exception_handler(exc, context)
    if response is None:
        return None
    body: ErrorBody = {"status": response.status_code}
    if isinstance(exc, exceptions.ValidationError):
        body["code"] = "invalid"
        body["detail"] = "The request has invalid fields; see errors."
        body["errors"] = _flatten(exc.detail)
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        body["code"] = codes if isinstance(codes, str) else "error"
        body["detail"] = str(exc.detail)
    if isinstance(original, FhirError):
        for name, value in original.headers.items():
            response[name] = value
    response.data = body
    return response


class ClientIdConverter:
    """A client_id in a path: URL-safe base64 (see accounts.models.new_client_id). Other
    text never reaches the database (PostgreSQL refuses NUL bytes with a 500)."""

    regex = r"[A-Za-z0-9_-]{1,64}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


@csrf_exempt
def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any /api/ URL no view matches (e.g. a malformed uuid in a path): the API's 404
    body, not the HTML page, so scripts can always parse what they get."""
    body: ErrorBody = {"status": 404, "code": "not_found", "detail": "No such API endpoint."}
    return JsonResponse(body, status=404)


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, normalised to UTC. Python accepts offsets PostgreSQL
    refuses (e.g. +16:13), and near year 1 an offset can leave the calendar; both are
    the caller's input errors (400), not the database's (500)."""

    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise DjangoValidationError("This date-time is out of range.", code="invalid") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class PagePagination(PageNumberPagination):
    """Short lists (clients, groups, files): page numbers, 50 a page, up to 500."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class NewestFirstCursorPagination(CursorPagination):
    """Long, growing lists (audit events, export jobs): a cursor stays stable while
    new rows arrive, where page numbers would shift under the reader."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = ("-created_at", "-pk")


def add_error_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every operation documents ErrorBody for the
    error statuses it can return, so clients and schemathesis know their shape."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorBody"] = {
        "type": "object",
        "properties": {
            "status": {"type": "integer"},
            "code": {"type": "string"},
            "detail": {"type": "string"},
            "errors": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
        },
        "required": ["status", "code", "detail"],
    }
    error = {
        "description": "Error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for status in ERROR_STATUSES:
                responses.setdefault(status, error)
            for status, response in responses.items():
                if status.startswith("4") and "content" not in response:
                    response["content"] = error["content"]  # e.g. a view's own 409
    return result
