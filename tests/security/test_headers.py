"""Security headers on every kind of response, and what BULKOPS_TLS changes: Secure
cookies, the redirect to https and HSTS, read from the settings module as a deployment
runs it (a separate process with the environment set), not from test overrides."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts.services import create_operator
from tests.accounts.conftest import ensure_role_groups
from tests.processes import manage, process_env

pytestmark = pytest.mark.django_db


def directives(header: str) -> dict[str, list[str]]:
    parsed = {}
    for part in header.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


@pytest.mark.parametrize(
    "url", ["/accounts/login/", "/", "/fhir/metadata", "/auth/token", "/api/v1/exports/"]
)
def test_every_response_carries_the_security_headers(url, console_client) -> None:
    response = console_client("auditor").get(url)
    policy = directives(response["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval'
    assert policy["default-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response  # plain http by default


PROBE = """
import json
from django.conf import settings as s
from django.core.management import call_command
from django.test import Client
from accounts.services import create_operator

call_command("migrate", verbosity=0)
_, password = create_operator(username="tls", role="admin")
browser = Client()
plain = browser.get("/accounts/login/")
health = browser.get("/healthz")
page = browser.get("/accounts/login/", secure=True)
login = browser.post("/accounts/login/", {"login": "tls", "password": password}, secure=True)

def flags(morsel):
    return {"secure": bool(morsel["secure"]), "httponly": bool(morsel["httponly"]),
            "samesite": morsel["samesite"]}

print(json.dumps({
    "plain": [plain.status_code, plain.get("Location", "")],
    "health": health.status_code,
    "hsts": page.get("Strict-Transport-Security", ""),
    "csrf_cookie": flags(page.cookies["csrftoken"]),
    "login": login.status_code,
    "session_cookie": flags(login.cookies["sessionid"]),
    "debug": s.DEBUG,
}))
"""


def probe(tmp_path, **env: str) -> dict:
    result = manage(process_env(tmp_path, **env), "shell", "--no-imports", "-c", PROBE)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_with_tls_cookies_are_secure_http_redirects_and_hsts_is_sent(tmp_path) -> None:
    shown = probe(tmp_path, BULKOPS_TLS="true")
    assert shown["debug"] is False
    assert shown["plain"] == [301, "https://testserver/accounts/login/"]
    assert shown["health"] != 301  # load balancers probe over plain http
    assert shown["hsts"] == "max-age=31536000"
    assert shown["login"] == 302
    for cookie in ("csrf_cookie", "session_cookie"):
        assert shown[cookie] == {"secure": True, "httponly": True, "samesite": "Lax"}, cookie


def test_without_tls_cookies_stay_httponly_and_samesite(tmp_path) -> None:
    shown = probe(tmp_path)
    assert shown["plain"][0] == 200
    assert shown["hsts"] == ""
    for cookie in ("csrf_cookie", "session_cookie"):
        assert shown[cookie] == {"secure": False, "httponly": True, "samesite": "Lax"}, cookie


def test_csrf_cookie_is_not_readable_by_script_yet_htmx_posts_work() -> None:
    """htmx sends the token from the page's hx-headers, so the cookie can be HttpOnly."""
    ensure_role_groups()
    user, _ = create_operator(username="htmx", role="admin")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    page = browser.get("/tokens/")
    token = str(page.context["csrf_token"])
    assert f'hx-headers=\'{{"X-CSRFToken": "{token}"}}\''.encode() in page.content
    response = browser.post("/tokens/", {"name": "ci"}, headers={"X-CSRFToken": token})
    assert response.status_code in (200, 302)
