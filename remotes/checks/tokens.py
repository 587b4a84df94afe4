"""Token endpoint checks (spec §7.3–7.7, checklist 61–68): a good assertion earns a
token; a wrong audience, an expired assertion and a replayed jti are refused with an
RFC 6749 error. None of them runs against a token endpoint our tokens may not come from
(remotes.token_destination): the first fails saying why, the others are skipped."""

from __future__ import annotations

import urllib.parse

from exports.bulk_client import ASSERTION_TYPE, HttpResult, make_client_assertion
from remotes.checks.base import Facts, Recorder, parse_json

RFC6749_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    }
)


def _request_token(rec: Recorder, token_url: str, assertion: str) -> HttpResult:
    form = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
            "scope": rec.target.scope,
        }
    ).encode()
    result = rec.http(
        "POST",
        token_url,
        data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
    )
    rec.excerpt(f"token response ({result.status})", result.body)
    return result


def _assertion(rec: Recorder, token_url: str, **kwargs: object) -> str:
    return make_client_assertion(rec.target.client_id, rec.target.private_jwk, token_url, **kwargs)


def token_request(rec: Recorder, facts: Facts) -> str:
    token_url = facts.need("token_url")
    if problem := rec.target.token_url_problem(token_url):
        rec.fail(problem)
        facts.token_url = ""
        facts.reasons["token_url"] = facts.reasons["access_token"] = problem
        return ""
    if not rec.target.client_id:
        problem = (
            "no client_id is set for us at this server yet: register our public key set "
            "there, then add the client_id it gives us."
        )
        rec.fail(problem[0].upper() + problem[1:])
        facts.reasons["access_token"] = problem
        return ""
    result = _request_token(rec, token_url, _assertion(rec, token_url))
    if result.status != 200:
        rec.fail(f"A correctly signed assertion was refused with {result.status}.")
        facts.reasons["access_token"] = "the token request with a good assertion failed."  # noqa: S105
        return ""
    body = parse_json(rec, result, "token response")
    if not isinstance(body, dict):
        return ""
    if isinstance(body.get("access_token"), str) and body["access_token"]:
        facts.access_token = body["access_token"]
    else:
        rec.fail("The response has no access_token.")
    if str(body.get("token_type", "")).lower() != "bearer":
        rec.fail(f"token_type is {body.get('token_type')!r}, not bearer.")
    if not isinstance(body.get("expires_in"), int | float):
        rec.fail("expires_in is missing or not a number.")
    elif body["expires_in"] > 300:
        rec.warn(f"Tokens live {body['expires_in']} s; SMART asks for at most 300.")
    if not body.get("scope"):
        rec.fail("The granted scope is missing.")
    if "no-store" not in result.headers.get("Cache-Control", ""):
        rec.warn("The token response lacks Cache-Control: no-store.")
    scope, lifetime = body.get("scope"), body.get("expires_in")
    return f"A token was issued for scope {scope!r}, expiring in {lifetime} s."


def _expect_refusal(rec: Recorder, result: HttpResult, what: str) -> str:
    if result.status == 200:
        rec.fail(f"The server issued a token for {what}.")
        return ""
    try:
        body = result.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if result.status not in (400, 401) or error not in RFC6749_ERRORS:
        rec.fail(f"Refused with {result.status} but not with an RFC 6749 error body.")
    elif error != "invalid_client":
        rec.warn(f"Refused with {error}; SMART asks for invalid_client.")
    return f"Refused with {result.status} {error}."


def token_wrong_audience(rec: Recorder, facts: Facts) -> str:
    token_url = facts.need("token_url")
    wrong = "https://audience.invalid/token"
    return _expect_refusal(
        rec,
        _request_token(rec, token_url, _assertion(rec, wrong)),
        "an assertion for another audience",
    )


def token_expired(rec: Recorder, facts: Facts) -> str:
    token_url = facts.need("token_url")
    assertion = _assertion(rec, token_url, lifetime=-600)
    return _expect_refusal(rec, _request_token(rec, token_url, assertion), "an expired assertion")


def token_reused_jti(rec: Recorder, facts: Facts) -> str:
    token_url = facts.need("token_url")
    assertion = _assertion(rec, token_url)
    first = _request_token(rec, token_url, assertion)
    if first.status != 200:
        rec.fail(f"The first use of a fresh assertion was refused with {first.status}.")
        return ""
    return _expect_refusal(rec, _request_token(rec, token_url, assertion), "a replayed jti")
