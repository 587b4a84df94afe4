"""X-Forwarded-Proto and X-Forwarded-For against gunicorn started with the repository's
gunicorn.conf.py: believed only behind a TLS proxy (BULKOPS_BEHIND_TLS_PROXY) and only
from its addresses (BULKOPS_TRUSTED_PROXIES). The requests come from 127.0.0.1, which
gunicorn's own default trusted: an https `aud` then passed over plain http."""

from __future__ import annotations

import json
import re
import sqlite3
import urllib.error
import urllib.request
from ipaddress import ip_network
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from accounts.models import TOKEN_REQUEST, AuditEvent
from bulkops.forwarded import client_address
from exports.bulk_client import make_client_assertion
from tests.processes import manage, process_env, web_server
from tests.smart import FORM, token_form

CLIENT = "203.0.113.9"  # what the "proxy" says it connected for
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": f"198.51.100.1, {CLIENT}"}


class Installation:
    """A migrated SQLite database with the demo client, shared by the servers below."""

    def __init__(self, var_dir: Path) -> None:
        self.var_dir = var_dir
        for command in (["migrate", "--no-input"], ["seed_demo", "--url", "http://127.0.0.1"]):
            result = manage(process_env(var_dir), *command)
            assert result.returncode == 0, result.stderr
        self.client_id = re.search(r"--client-id (\S+)", result.stdout).group(1)
        self.jwk = json.loads((var_dir / "demo-client-key.jwks").read_text())["keys"][0]

    def last_token_request_address(self) -> str | None:
        with sqlite3.connect(self.var_dir / "bulkops.sqlite3") as db:
            row = db.execute(
                f"SELECT ip_address FROM {AuditEvent._meta.db_table} "  # noqa: S608
                "WHERE action = ? ORDER BY id DESC LIMIT 1",
                (TOKEN_REQUEST,),
            ).fetchone()
        return row[0]


@pytest.fixture(scope="module")
def installation(tmp_path_factory) -> Installation:
    return Installation(tmp_path_factory.mktemp("forwarded") / "var")


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def request_token(installation: Installation, base_url: str) -> tuple[int, dict[str, Any], str]:
    """A token request over plain http whose assertion names the https token URL, sent
    with forwarded headers as a TLS proxy would add them: (status, body, Location)."""
    https_token_url = base_url.replace("http://", "https://") + "/auth/token"
    assertion = make_client_assertion(installation.client_id, installation.jwk, https_token_url)
    request = urllib.request.Request(
        f"{base_url}/auth/token",
        data=urlencode(token_form(assertion)).encode(),
        headers={"Content-Type": FORM, **FORWARDED},
    )
    try:
        with urllib.request.build_opener(NoRedirects).open(request, timeout=10) as response:
            return response.status, json.loads(response.read()), ""
    except urllib.error.HTTPError as error:
        body = error.read()
        return error.code, json.loads(body) if body else {}, error.headers.get("Location", "")


def test_behind_nothing_forwarded_headers_are_ignored(installation) -> None:
    with web_server(process_env(installation.var_dir)) as base_url:
        status, body, _ = request_token(installation, base_url)
    assert status == 401
    assert body == {
        "error": "invalid_client",
        "error_description": f"The assertion's aud must be {base_url}/auth/token.",
    }
    assert installation.last_token_request_address() == "127.0.0.1"


def test_behind_a_tls_proxy_its_forwarded_headers_count(installation) -> None:
    env = process_env(installation.var_dir, BULKOPS_BEHIND_TLS_PROXY="true")
    with web_server(env) as base_url:
        status, body, _ = request_token(installation, base_url)
    assert status == 200, body
    assert body["token_type"] == "bearer"
    assert installation.last_token_request_address() == CLIENT


def test_behind_a_tls_proxy_other_peers_forwarded_headers_are_ignored(installation) -> None:
    """127.0.0.1 is not the proxy here: its request is plain http, so it is redirected to
    https (BULKOPS_BEHIND_TLS_PROXY implies BULKOPS_TLS) before any token is looked at."""
    env = process_env(
        installation.var_dir, BULKOPS_BEHIND_TLS_PROXY="true", BULKOPS_TRUSTED_PROXIES="10.0.0.0/8"
    )
    with web_server(env) as base_url:
        status, _, location = request_token(installation, base_url)
    assert (status, location) == (301, base_url.replace("http://", "https://") + "/auth/token")


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("10.0.0.2", "203.0.113.9", "203.0.113.9"),
        ("10.0.0.2", "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # the client wrote 6.6.6.6
        ("10.0.0.2", "203.0.113.9, 10.0.0.3", "203.0.113.9"),  # two of our proxies
        ("10.0.0.2", "10.0.0.4, 10.0.0.3", "10.0.0.4"),  # only proxies: the farthest
        ("10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", "203.0.113.9, not-an-address", "10.0.0.2"),
        ("10.0.0.2", "2001:DB8::0:1", "2001:db8::1"),
        ("192.0.2.7", "203.0.113.9", "192.0.2.7"),  # not a proxy of ours
    ],
)
def test_the_client_is_the_nearest_hop_that_is_not_our_proxy(peer, forwarded_for, client) -> None:
    assert client_address(peer, forwarded_for, (ip_network("10.0.0.0/24"),)) == client
