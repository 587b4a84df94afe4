"""Hostile input against the real views: fuzzed kick-off parameters, Parameters bodies and
token requests never get a 5xx and always get a clear OperationOutcome or RFC 6749
error; oversized bodies, assertions and key sets are refused before they cost much.

Hypothesis runs a bounded number of examples per test with no deadline, so the suite's
time stays predictable; a found failure is shrunk and printed as usual.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
import uuid
from functools import partial
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.jwks import MAX_JWKS_BYTES, MAX_JWKS_KEYS, JwksError, fetch_jwks, validate_jwks
from accounts.models import TOKEN_REQUEST, AuditEvent, BackendClient
from accounts.services import register_client
from bulkops.logs import TextFormatter
from bulkops.signing_keys import generate_private_jwk
from bulkops.untrusted_json import MAX_DEPTH
from exports.bulk_client import make_client_assertion
from fhirstore.models import Resource
from remotes.models import RemoteServer
from tests.accounts.conftest import ensure_role_groups
from tests.security.test_access_matrix import (
    API,
    Route,
    matrix_routes,
    routes,
    table_for,
)
from tests.smart import FORM, TOKEN_URL, post_form, sign_assertion, token_form

pytestmark = pytest.mark.django_db

# The suite runs the same 150 examples per test every time (derandomized), so CI never
# fails by chance; BULKOPS_FUZZ_EXAMPLES=2000 explores fresh random inputs instead.
EXPLORE = int(os.environ.get("BULKOPS_FUZZ_EXAMPLES", "0"))
fuzz = settings(
    max_examples=EXPLORE or 150,
    derandomize=not EXPLORE,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

OAUTH_ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_scope",
    "unauthorized_client",
    "unsupported_grant_type",
}
PARAMETER_NAMES = [
    "_type",
    "_since",
    "_outputFormat",
    "_elements",
    "_typeFilter",
    "patient",
    "includeAssociatedData",
    "_includeAssociatedData",
    "_count",
]
# Text that has broken parsers elsewhere: separators, escapes, NULs, surrogates' UTF-8
# neighbours, huge numbers, markup and injection-shaped strings.
NASTY = st.sampled_from(
    [
        "",
        ",",
        ",,,",
        "Patient,",
        "*",
        "Patient?",
        "Observation?code=",
        "Observation?code=%",
        "Observation?code=%00",
        "Observation?value-quantity=1e99999999999",
        "Observation?date=ge9999-12-31T23:59:59-14:00",
        "Observation?_lastUpdated=ap0001",
        "Observation?subject:Patient.name=x,Condition?_sort=date",
        "Patient?name:contains=%F0%9F%98%80\\,\\|",
        "Patient.id.id",
        "9999-12-31T23:59:59Z",
        "0000-01-01T00:00:00Z",
        "2020-02-30T00:00:00Z",
        "2020-01-01T24:00:00+14:00",
        "1e309",
        "-1",
        "\x00",
        "\ufeffPatient",
        "Pätient",
        "<script>alert(1)</script>",
        "' OR 1=1 --",
        "../../etc/passwd",
        "Patient/" + "a" * 70,
        "Group/g1",
        "Patient/p1",
        "application/fhir+ndjson",
        "ndjson",
        "x" * 3000,
    ]
)
VALUE = st.one_of(
    NASTY, st.text(max_size=80), st.from_regex(r"[A-Z][a-z]{2,12}(,[A-Z][a-z]{2,12}){0,4}")
)
PAIRS = st.lists(
    st.tuples(st.one_of(st.sampled_from(PARAMETER_NAMES), st.text(max_size=20)), VALUE),
    max_size=8,
)


def assert_outcome(response: Any) -> None:
    """A 2xx, or a 4xx that is a FHIR OperationOutcome saying what was wrong."""
    assert response.status_code < 500, response.content[:500]
    if response.status_code >= 400:
        assert response["Content-Type"].startswith("application/fhir+json")
        body = response.json()
        assert body["resourceType"] == "OperationOutcome"
        assert body["issue"] and all(issue["diagnostics"] for issue in body["issue"])


@pytest.fixture
def fhir(client_a, store, settings: Any) -> Any:
    """client_a with one token; its kick-offs never hit the concurrency limit, so every
    example reaches the parameter parsing."""
    settings.BULKOPS_MAX_CONCURRENT_EXPORTS = 1_000_000
    token = client_a.token()

    def call(method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return getattr(client_a.http, method)(path, headers=headers, **kwargs)

    return call


KICKOFFS = ["/fhir/$export", "/fhir/Patient/$export", "/fhir/Group/g1/$export"]
KICKOFF_PATHS = st.sampled_from(KICKOFFS)
HEADERS = st.fixed_dictionaries(
    {
        "Prefer": st.one_of(
            st.just("respond-async"),
            st.just("respond-async, handling=lenient"),
            st.text(max_size=40),
        ),
        "Accept": st.one_of(st.just("application/fhir+json"), st.text(max_size=40)),
    }
)


@fuzz
@given(path=KICKOFF_PATHS, pairs=PAIRS, headers=HEADERS)
def test_fuzzed_kickoff_query_parameters_get_an_outcome(fhir, path, pairs, headers) -> None:
    assert_outcome(fhir("get", f"{path}?{urlencode(pairs)}", headers=headers))


@fuzz
@given(path=KICKOFF_PATHS, raw=st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_fuzzed_raw_query_strings_get_an_outcome(fhir, path, raw) -> None:
    """Any bytes after the `?`, as a WSGI server hands them over (latin-1, PEP 3333)."""
    headers = {"Prefer": "respond-async"}
    assert_outcome(fhir("get", path, headers=headers, QUERY_STRING=raw))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
VALUE_KEYS = [
    "valueString",
    "valueInstant",
    "valueCode",
    "valueDateTime",
    "valueUri",
    "valueReference",
    "valueBoolean",
    "valueInteger",
]
PARAMETER = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {"name": st.one_of(st.sampled_from(PARAMETER_NAMES), JSON)},
        optional={
            key: st.one_of(VALUE, JSON, st.fixed_dictionaries({"reference": VALUE}))
            for key in VALUE_KEYS
        },
    ),
)
PARAMETERS_BODY = st.one_of(
    st.fixed_dictionaries(
        {"resourceType": st.just("Parameters"), "parameter": st.lists(PARAMETER, max_size=6)}
    ),
    st.fixed_dictionaries({"resourceType": st.one_of(st.just("Parameters"), JSON)}),
    JSON,
)


# Openers of arrays or objects repeated to any depth around the nesting limit and past
# the recursion limit, closed or not.
CLOSER = {"[": "]", '{"a":': "}"}
NESTED_OPENERS = st.builds(
    lambda opener, depth, closed: opener * depth + ("1" + CLOSER[opener] * depth) * closed,
    st.sampled_from(list(CLOSER)),
    st.integers(min_value=1, max_value=3000),
    st.booleans(),
)


@fuzz
@given(
    path=KICKOFF_PATHS,
    body=st.one_of(PARAMETERS_BODY.map(json.dumps), st.binary(max_size=200), NESTED_OPENERS),
    content_type=st.sampled_from(["application/fhir+json", "application/json", "text/plain"]),
)
def test_fuzzed_post_parameters_bodies_get_an_outcome(fhir, path, body, content_type) -> None:
    headers = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
    assert_outcome(fhir("post", path, data=body, content_type=content_type, headers=headers))


def assert_oauth_error(response: Any) -> None:
    assert response.status_code in (400, 401, 405, 413, 429), response.content[:500]
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"] in OAUTH_ERRORS
    assert isinstance(body["error_description"], str) and body["error_description"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# JWT-shaped strings with hostile headers and claims, signed with nothing or garbage.
FORGED_JWT = st.builds(
    lambda header, claims, signature: ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature)]
    ),
    st.one_of(
        st.fixed_dictionaries(
            {
                "alg": st.sampled_from(["none", "HS256", "RS384", "ES384", "RS256", ""]),
                "typ": st.sampled_from(["JWT", "jwt", "at+jwt"]),
            },
            optional={"kid": JSON, "jku": VALUE, "x5u": VALUE, "crit": JSON},
        ),
        JSON,
    ),
    st.one_of(st.dictionaries(st.sampled_from(["iss", "sub", "aud", "exp", "jti"]), JSON), JSON),
    st.binary(max_size=64),
)
TOKEN_FIELDS = st.dictionaries(
    st.sampled_from(
        ["grant_type", "client_assertion_type", "client_assertion", "scope", "client_id"]
    ),
    st.one_of(VALUE, FORGED_JWT),
)


@pytest.fixture
def fresh_token_window() -> Any:
    """Each example starts a new rate-limit window: failures of earlier examples would
    otherwise turn every later one into a 429 before its input is even looked at."""

    def clear() -> None:
        AuditEvent.objects.filter(action=TOKEN_REQUEST).delete()

    return clear


@fuzz
@given(
    fields=TOKEN_FIELDS,
    base=st.booleans(),
    content_type=st.sampled_from([FORM, "multipart/form-data", "application/json"]),
)
def test_fuzzed_token_requests_get_rfc6749_errors(
    fresh_token_window, fields, base, content_type
) -> None:
    fresh_token_window()
    form = {**(token_form("x") if base else {}), **fields}
    if content_type == FORM:
        response = post_form(form)
    elif content_type == "application/json":
        response = Client().post("/auth/token", json.dumps(form), content_type=content_type)
    else:
        response = Client().post("/auth/token", form)
    assert_oauth_error(response)


CLAIM_VALUES = st.one_of(
    JSON,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 2**63, "now", TOKEN_URL, [TOKEN_URL]]),
)


@fuzz
@given(
    claims=st.dictionaries(
        st.sampled_from(["iss", "sub", "aud", "exp", "nbf", "iat", "jti"]), CLAIM_VALUES
    ),
    scope=st.one_of(st.just("system/*.read"), VALUE),
)
def test_fuzzed_claims_in_validly_signed_assertions_get_rfc6749_errors(
    fresh_token_window, rsa_key, claims, scope
) -> None:
    """Signed with the registered key: the hostile values reach the claim checks that
    run after the signature, where an unchecked type or range would be a 500."""
    fresh_token_window()
    client = fuzz_client(rsa_key)
    payload = {
        "iss": client,
        "sub": client,
        "aud": TOKEN_URL,
        "exp": int(time.time()) + 120,
        "jti": uuid.uuid4().hex,
        **claims,
    }
    try:
        assertion = jwt.encode(
            payload, rsa_key.private, "RS384", headers={"kid": rsa_key.kid, "typ": "JWT"}
        )
    except (TypeError, ValueError, OverflowError):
        return  # not even encodable as JSON: no client can send it
    response = post_form(token_form(assertion, scope))
    if response.status_code != 200:
        assert_oauth_error(response)


def fuzz_client(rsa_key: Any) -> str:
    """One registered client for all examples of a test (rolled back after it)."""
    existing = BackendClient.objects.filter(name="fuzz").first()
    if existing is None:
        existing = register_client(name="fuzz", jwks=rsa_key.jwks(), scopes="system/*.read")
    return existing.client_id


# --- Oversized input: refused with a clear error, before it is parsed -----------------


def test_an_oversized_post_kickoff_body_gets_413_outcome(fhir, settings) -> None:
    body = json.dumps(
        {
            "resourceType": "Parameters",
            "parameter": [{"name": "patient", "valueReference": {"reference": "Patient/p1"}}]
            * 60_000,
        }
    )
    assert len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = fhir(
        "post",
        "/fhir/Group/g1/$export",
        data=body,
        content_type="application/fhir+json",
        headers={"Prefer": "respond-async"},
    )
    assert response.status_code == 413
    assert_outcome(response)
    assert "too large" in response.json()["issue"][0]["diagnostics"]
    assert response.json()["issue"][0]["code"] == "too-long"


def test_a_query_string_with_too_many_parameters_gets_413_outcome(fhir) -> None:
    query = urlencode([("_type", "Patient")] * 1500)
    response = fhir("get", f"/fhir/$export?{query}", headers={"Prefer": "respond-async"})
    assert response.status_code == 413
    assert_outcome(response)


def test_an_oversized_token_request_gets_an_rfc6749_error(settings) -> None:
    form = token_form("x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1))
    response = post_form(form)
    assert response.status_code == 413
    assert_oauth_error(response)
    assert response.json()["error"] == "invalid_request"
    assert "too large" in response.json()["error_description"]


def test_an_oversized_assertion_is_refused_unparsed(rsa_key, client_a) -> None:
    client_id = client_a.backend_client.client_id
    padded = sign_assertion(rsa_key, client_id, padding="p" * 10_000)
    response = post_form(token_form(padded))
    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "The client_assertion is longer than 8192 characters.",
    }
    # Not even its unverified iss was read: the audit trail does not name the client.
    event = AuditEvent.objects.get(action=TOKEN_REQUEST)
    assert event.actor == "" and event.reason == "oversized_assertion"


def test_a_jwk_set_with_too_many_keys_is_refused(rsa_key) -> None:
    keys = [{**rsa_key.public_jwk, "kid": f"k{n}"} for n in range(MAX_JWKS_KEYS + 1)]
    with pytest.raises(JwksError, match=f"at most {MAX_JWKS_KEYS}"):
        validate_jwks({"keys": keys})
    assert validate_jwks({"keys": keys[:MAX_JWKS_KEYS]})


def test_an_oversized_pasted_jwk_set_is_refused_next_to_the_field(console_client, rsa_key) -> None:
    padded = {"keys": [{**rsa_key.public_jwk, "x5c": ["A" * MAX_JWKS_BYTES]}]}
    response = console_client("admin").post(
        "/clients/new/",
        {"name": "Big", "jwks": json.dumps(padded), "scope_types": "*", "syntax": "v1"},
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert any(f"larger than {MAX_JWKS_BYTES} bytes" in e for e in errors["jwks"]), errors


def test_an_oversized_fetched_jwk_set_is_refused(jwks_server, rsa_key) -> None:
    jwks_server.jwks = rsa_key.jwks()
    jwks_server.extra_bytes = MAX_JWKS_BYTES
    with pytest.raises(JwksError, match=f"larger than {MAX_JWKS_BYTES} bytes"):
        fetch_jwks(jwks_server.url)


def test_token_requests_via_query_string_do_not_count(client_a) -> None:
    """The assertion belongs in the body; the same fields in the URL are ignored."""
    assertion = sign_assertion_for(client_a)
    response = Client().post(
        "/auth/token?" + urlencode(token_form(assertion)), "", content_type=FORM
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def sign_assertion_for(fhir_client: Any) -> str:
    return make_client_assertion(fhir_client.backend_client.client_id, fhir_client.jwk, TOKEN_URL)


@pytest.mark.parametrize("where", ["scope", "iss", "jti"])
def test_nul_characters_in_token_requests_get_rfc6749_errors(rsa_key, client_a, where) -> None:
    """PostgreSQL refuses NUL in text and jsonb: a NUL in what a caller sends, stored in
    the audit trail or used in a lookup, was a 500 there (SQLite stored it)."""
    client_id = client_a.backend_client.client_id
    if where == "scope":
        form = token_form(sign_assertion(rsa_key, client_id), scope="system/\x00.read")
    elif where == "iss":
        form = token_form(sign_assertion(rsa_key, "evil\x00"))
    else:
        form = token_form(sign_assertion(rsa_key, client_id, jti="j\x00"))
    response = post_form(form)
    assert_oauth_error(response)
    event = AuditEvent.objects.get(action=TOKEN_REQUEST)
    assert "\x00" not in event.actor + json.dumps(event.details)


def test_a_newline_in_an_unverified_iss_cannot_forge_a_log_line(rsa_key, caplog) -> None:
    forged = "x\n2026-01-01T00:00:00.000Z INFO accounts.token_views: token issued client_id=a"
    with caplog.at_level(logging.INFO, logger="accounts.token_views"):
        assert post_form(token_form(sign_assertion(rsa_key, forged))).status_code == 401
    (record,) = [r for r in caplog.records if r.name == "accounts.token_views"]
    line = TextFormatter().format(record)
    assert "\n" not in line
    assert line.endswith(f"client_id={json.dumps(forged)} status=401")


@pytest.mark.parametrize("surface", ["kick-off", "operator API", "token endpoint"])
@pytest.mark.parametrize("extra", [0, 1])
def test_a_body_one_byte_over_the_limit_gets_413(fhir, api_as, settings, surface, extra) -> None:
    """BULKOPS_MAX_BODY_BYTES is DATA_UPLOAD_MAX_MEMORY_SIZE, which Django reads per
    request (tests/bulkops/test_documented_settings.py shows the variable sets it): a
    body of exactly the limit is read, one byte more is refused on every surface."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096

    def padded(body: str, pad: str) -> str:
        return body + pad * (limit + extra - len(body))

    if surface == "kick-off":
        parameters = {"resourceType": "Parameters", "parameter": []}
        response = fhir(
            "post",
            "/fhir/$export",
            data=padded(json.dumps(parameters), " "),
            content_type="application/fhir+json",
            headers={"Prefer": "respond-async"},
        )
    elif surface == "operator API":
        group = {"id": "edge", "name": "Edge", "patient_ids": ["p1"]}
        response = api_as("operator").post("/api/v1/groups/create", padded(json.dumps(group), " "))
    else:
        response = Client().post(
            "/auth/token", padded(urlencode(token_form("x")) + "&padding=", "p"), content_type=FORM
        )
    assert (response.status_code == 413) is bool(extra), response.content[:300]


def test_an_oversized_operator_api_body_gets_413_in_the_error_shape(api_as, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    body = {"resourceType": "Group", "id": "big", "member": ["Patient/p"] * 1000}
    response = api_as("admin").post("/api/v1/groups/create", body)
    assert response.status_code == 413
    assert response.json() == {
        "status": 413,
        "code": "too_large",
        "detail": "The request body is larger than 4096 bytes.",
    }


@pytest.mark.django_db(transaction=True)
def test_an_oversized_api_body_over_real_http_gets_413(live_server, api_as, settings) -> None:
    """The same over a real socket, where the body arrives as a stream."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    ensure_role_groups()  # a transactional test starts from flushed tables
    token = api_as("admin").headers["Authorization"]
    body = json.dumps({"resourceType": "Group", "id": "big", "member": ["Patient/p"] * 1000})
    request = urllib.request.Request(
        f"{live_server.url}/api/v1/groups/create",
        data=body.encode(),
        headers={"Authorization": token, "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 413
    assert json.loads(refused.value.read())["code"] == "too_large"


# --- Deeply nested JSON: a clear 4xx in each surface's own shape, never a 500 --------
#
# json recurses once per level, so a few kilobytes of "[" raised RecursionError (an
# HTML 500). Every parse of outside JSON goes through bulkops.untrusted_json, which
# refuses more than MAX_DEPTH levels before json starts.


def nested(depth: int) -> str:
    """A complete JSON value of `depth` nested arrays."""
    return "[" * depth + "1" + "]" * depth


DEEP = f"deeper than {MAX_DEPTH} levels"
ERROR_KEYS = {"status", "code", "detail", "errors"}  # the operator API's ErrorBody
# (body, whether it is over the limit): far over in two shapes, one over, and at it.
NESTED_BODIES = [
    pytest.param("[" * 5000, True, id="5000-arrays"),
    pytest.param('{"a":' * 5000, True, id="5000-objects"),
    pytest.param(nested(MAX_DEPTH + 1), True, id="limit+1"),
    pytest.param(nested(MAX_DEPTH), False, id="limit"),
]


@pytest.mark.parametrize("path", KICKOFFS)
@pytest.mark.parametrize(("body", "too_deep"), NESTED_BODIES)
def test_nested_kickoff_bodies_get_a_400_outcome(fhir, path, body, too_deep) -> None:
    headers = {"Prefer": "respond-async"}
    response = fhir("post", path, data=body, content_type="application/fhir+json", headers=headers)
    assert response.status_code == 400
    assert_outcome(response)
    diagnostics = response.json()["issue"][0]["diagnostics"]
    assert (DEEP in diagnostics) is too_deep, diagnostics


def api_post_routes() -> list[tuple[Route, bool]]:
    """Every operator API route that answers POST (from the URL resolver, so a new one
    is covered) and whether its OpenAPI operation takes a JSON body."""
    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    found = []
    for route in routes():
        if route.namespace == "api":
            path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route.route)
            operation = paths[path].get("post")
            if operation is not None:
                found.append((route, "requestBody" in operation))
    return found


@pytest.mark.parametrize("auth", ["token", "session"])
@pytest.mark.parametrize(("body", "too_deep"), NESTED_BODIES)
def test_nested_api_bodies_get_a_400_in_the_api_error_shape(
    url_of, api_as, console_client, auth, body, too_deep
) -> None:
    if auth == "token":
        token = api_as("admin").headers
        post = partial(Client().post, headers=token)
    else:
        post = console_client("admin").post
    with_bodies = {route.name for route, takes_body in api_post_routes() if takes_body}
    assert {"client-create", "client-key-add", "job-launch", "group-update"} <= with_bodies
    wrong = []
    for route, takes_body in api_post_routes():
        response = post(url_of(route), body, content_type="application/json")
        status = response.status_code
        answer = response.json() if 400 <= status < 500 else {}
        refused = status == 400 and answer["code"] == "parse_error"
        if (
            status >= 500
            or (answer and not {"status", "code", "detail"} <= set(answer) <= ERROR_KEYS)
            or (takes_body and refused is not too_deep)
            or (refused and DEEP not in answer["detail"])
        ):
            wrong.append((route.name, status, answer))
    assert wrong == []


@pytest.mark.parametrize(
    "deep",
    ["[" * 6000, '{"a":' * 1200, nested(MAX_DEPTH + 1)],
    ids=["6000-arrays", "1200-objects", "limit+1"],
)
@pytest.mark.parametrize("segment", ["header", "claims"])
def test_nested_json_in_an_assertion_gets_invalid_client(fresh_token_window, segment, deep) -> None:
    """The header or claims segment nests past Python's recursion limit within the
    8 KiB an assertion may have: a 401 like any other malformed assertion."""
    header, claims = b64(b'{"alg":"RS384","typ":"JWT","kid":"k"}'), b64(b'{"iss":"x"}')
    parts = {"header": header, "claims": claims, segment: b64(deep.encode())}
    assertion = f"{parts['header']}.{parts['claims']}.{b64(b'signature')}"
    assert len(assertion) <= 8192
    response = post_form(token_form(assertion))
    assert response.status_code == 401
    assert_oauth_error(response)
    assert response.json()["error"] == "invalid_client"


def test_nested_json_from_a_jwks_uri_is_refused(jwks_server) -> None:
    jwks_server.jwks = b"[" * 5000
    with pytest.raises(JwksError, match="did not return JSON"):
        fetch_jwks(jwks_server.url)


@pytest.mark.parametrize(
    ("url", "field", "fields"),
    [
        ("/clients/new/", "jwks", {"name": "Deep", "scope_types": "*", "syntax": "v1"}),
        ("/clients/new/", "jwks_file", {"name": "Deep", "scope_types": "*", "syntax": "v1"}),
        ("/clients/check-keys/", "jwks", {}),
        ("/clients/{client_id}/keys/", "jwk", {}),
        ("/remotes/lab/key/", "private_jwks", {"source": "upload"}),
        ("/remotes/lab/key/", "private_jwks_file", {"source": "upload"}),
    ],
)
@pytest.mark.parametrize("body", ["[" * 5000, '{"a":' * 5000, nested(MAX_DEPTH + 1)])
def test_nested_json_in_a_console_field_gets_a_message(
    console_client, rsa_key, url, field, fields, body
) -> None:
    client = register_client(name="Lab", jwks=rsa_key.jwks(), scopes="system/*.read")
    server = RemoteServer(name="lab", base_url="https://fhir.invalid/r4", client_id="us")
    server.set_private_jwk(generate_private_jwk("ES384"))
    server.save()
    value = SimpleUploadedFile("keys.json", body.encode()) if field.endswith("_file") else body
    response = console_client("admin").post(
        url.format(client_id=client.client_id), {**fields, field: value}
    )
    assert response.status_code in (200, 400)
    assert b"valid json" in response.content.lower()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("deep.ndjson", b'{"resourceType":"Patient","id":"ok"}\n' + b"[" * 5000 + b"\n"),
        ("deep.json", b'{"a":' * 5000),
        ("limit.ndjson", nested(MAX_DEPTH + 1).encode() + b"\n"),
    ],
)
def test_a_nested_upload_is_a_per_file_error_that_loads_nothing(
    console_client, name, content
) -> None:
    files = [
        SimpleUploadedFile(name, content),
        SimpleUploadedFile("good.ndjson", b'{"resourceType":"Patient","id":"good"}\n'),
    ]
    response = console_client("operator").post("/data/upload/", {"files": files})
    assert response.status_code == 200
    reports = {report.path.name: report for report in response.context["reports"]}
    assert DEEP in reports[name].error
    assert reports["good.ndjson"].error is None
    patients = Resource.objects.filter(resource_type="Patient")
    assert sorted(patients.values_list("resource_id", flat=True)) == ["good"]


FORM_FIELD = re.compile(rb"<(?:input|textarea|select)\b[^>]*\bname=\"([\w-]+)\"[^>]*>")


def test_every_console_form_survives_nested_json_in_every_field(url_of, console_client) -> None:
    """Every field of every console form (read from the pages, so a new form is
    covered) set to deeply nested JSON, as text and as a file, posted to every console
    POST endpoint: a page or a message, never a 5xx."""
    admin = console_client("admin")
    pages = [url_of(r) for r, (get, _) in matrix_routes() if table_for(r) is not API and get]
    html = [admin.get(page) for page in pages]
    tags = [m for page in html if not page.streaming for m in FORM_FIELD.finditer(page.content)]
    names = {m.group(1).decode() for m in tags} - {"csrfmiddlewaretoken"}
    files = {m.group(1).decode() for m in tags if b'type="file"' in m.group(0)}
    assert {"jwks", "jwks_file", "jwk", "files", "private_jwks"} <= names
    failures = []
    for body in ("[" * 5000, '{"a":' * 5000):
        for route, (_, post_roles) in matrix_routes():
            if table_for(route) is API or post_roles is None:
                continue
            form: dict[str, Any] = {name: body for name in names - files}
            form.update({name: SimpleUploadedFile(f"{name}.json", body.encode()) for name in files})
            status = admin.post(url_of(route), form).status_code
            if status >= 500:
                failures.append((route.name, status))
    assert failures == []
