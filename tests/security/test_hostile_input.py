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
import time
import urllib.error
import urllib.request
import uuid
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.jwks import MAX_JWKS_BYTES, MAX_JWKS_KEYS, JwksError, fetch_jwks, validate_jwks
from accounts.models import TOKEN_REQUEST, AuditEvent, BackendClient
from accounts.services import register_client
from bulkops.logs import TextFormatter
from exports.bulk_client import make_client_assertion
from tests.accounts.conftest import ensure_role_groups
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


KICKOFF_PATHS = st.sampled_from(
    ["/fhir/$export", "/fhir/Patient/$export", "/fhir/Group/g1/$export"]
)
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


@fuzz
@given(
    path=KICKOFF_PATHS,
    body=st.one_of(PARAMETERS_BODY.map(json.dumps), st.binary(max_size=200)),
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
