"""The OpenAPI schema validates, its docs page needs no CDN, and the API honours it:
schemathesis sends generated requests to every operation and checks each response."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.services import create_api_token, create_operator


@pytest.mark.django_db
def test_schema_is_served_to_operators_and_validates(api_as, anonymous):
    response = api_as("auditor").get("/api/schema/", format="json")
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)  # drf-spectacular's OpenAPI 3 JSON Schema check
    assert "/api/v1/exports/launch" in schema["paths"]
    cancel = schema["paths"]["/api/v1/exports/{job_id}/cancel"]["post"]["responses"]
    assert cancel["409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    assert schema["components"]["securitySchemes"]["apiToken"]["in"] == "header"
    assert anonymous.get("/api/schema/").status_code == 401


@pytest.mark.django_db
def test_docs_page_serves_its_assets_locally(console_client):
    page = console_client("auditor").get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert not re.search(r"""(src|href)=["']https?://""", html)
    asset = Client().get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200


@pytest.fixture
def admin_headers(db) -> dict[str, str]:
    user, _ = create_operator(username="fuzzer", role="admin")
    return {"Authorization": f"Token {create_api_token(user=user, name='fuzz').raw}"}


@pytest.fixture
def wsgi_app() -> Iterator[Any]:
    """The real WSGI app. Like Django's test client, keep each request from closing the
    test's database connection (and the transaction that isolates the test)."""
    hooks = (signals.request_started, signals.request_finished)
    for signal in hooks:
        signal.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        for signal in hooks:
            signal.connect(close_old_connections)


# The schema the server serves at /api/schema/ (same generator, no database needed).
schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_conforms_to_its_schema(case, admin_headers, wsgi_app):
    case.call_and_validate(
        app=wsgi_app,
        headers=admin_headers,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )


def test_unknown_api_urls_answer_404_in_the_error_shape():
    response = Client().post("/api/v1/exports/not-a-uuid/cancel")
    assert response.status_code == 404
    assert response.json() == {
        "status": 404,
        "code": "not_found",
        "detail": "No such API endpoint.",
    }


@pytest.mark.django_db
def test_ids_outside_their_grammar_never_reach_the_database(api_as):
    """PostgreSQL refuses NUL bytes with an error; path converters keep them out."""
    admin = api_as("admin")
    for path in ("/api/v1/clients/a%00b", "/api/v1/groups/a%00b", "/api/v1/clients/a b/disable"):
        response = admin.get(path) if "disable" not in path else admin.post(path)
        assert response.status_code == 404, path
        assert response.json()["detail"] == "No such API endpoint."
