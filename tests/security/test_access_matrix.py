"""Who may GET and POST every console page and every operator API endpoint.

The URLs come from Django's URL resolver, not from a list typed here: a new page or
endpoint that is missing from EXPECTED fails `test_every_url_is_classified`, and one
without a role check fails the matrix (the user with no role would get in). The same
walk finds every POST endpoint for the CSRF test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from accounts.services import create_api_token, create_operator, register_client
from bulkops.signing_keys import generate_private_jwk
from exports.models import ExportJob
from remotes.models import RemoteServer, ServerCheck
from schedules.models import ExportSchedule
from tests.accounts.conftest import ensure_role_groups
from tests.exports.conftest import stored_file
from transfers.models import Delivery

pytestmark = pytest.mark.django_db

ALL = frozenset({"admin", "operator", "auditor"})
RUN = frozenset({"admin", "operator"})
AUDIT = frozenset({"admin", "auditor"})
ADMIN = frozenset({"admin"})
ROLES = ("admin", "operator", "auditor", None)

# URL name: (roles that may GET, roles that may POST); None = the method is not served.
CONSOLE: dict[str, tuple[frozenset[str] | None, frozenset[str] | None]] = {
    "dashboard": (ALL, None),
    "dashboard-running": (ALL, None),
    "audit-trail": (AUDIT, None),
    "audit-csv": (AUDIT, None),
    "operator-list": (ADMIN, None),
    "operator-create": (ADMIN, ADMIN),
    "operator-detail": (ADMIN, None),
    "operator-role": (None, ADMIN),
    "operator-deactivate": (None, ADMIN),
    "operator-reactivate": (None, ADMIN),
    "operator-password-reset": (ADMIN, ADMIN),
    "profile": (ALL, ALL),
    "api-tokens": (ALL, ALL),
    "api-token-revoke": (None, ALL),
    "client-list": (ALL, None),
    "client-register": (ADMIN, ADMIN),
    "client-keys-check": (None, ADMIN),
    "client-scope-preview": (None, ADMIN),
    "client-detail": (ALL, None),
    "client-edit": (ADMIN, ADMIN),
    "client-key-add": (None, ADMIN),
    "client-key-retire": (None, ADMIN),
    "client-disable": (None, ADMIN),
    "client-enable": (None, ADMIN),
    "job-list": (ALL, None),
    "job-launch": (RUN, RUN),
    "job-lint": (None, RUN),
    "job-detail": (ALL, None),
    "job-progress": (ALL, None),
    "job-delete": (None, RUN),
    "job-rerun": (None, RUN),
    "file-preview": (ALL, None),
    "file-preview-csv": (ALL, None),
    "file-download": (RUN, None),
    "data": (ALL, None),
    "group-save": (None, RUN),
    "group-delete": (None, RUN),
    "patient-search": (RUN, None),
    "data-upload": (None, RUN),
    "cohort-save": (None, RUN),
    "cohort-count": (None, RUN),
    "schedule-list": (ALL, None),
    "schedule-create": (RUN, RUN),
    "schedule-detail": (ALL, None),
    "schedule-edit": (RUN, RUN),
    "schedule-pause": (None, RUN),
    "schedule-resume": (None, RUN),
    "schedule-run": (None, RUN),
    "schedule-delete": (None, RUN),
}
# Remote Bulk Data servers (namespace "remotes") and their server checks ("remote-checks").
REMOTES: dict[str, tuple[frozenset[str] | None, frozenset[str] | None]] = {
    "remote-list": (ALL, None),
    "remote-create": (RUN, RUN),
    "remote-detail": (ALL, None),
    "remote-edit": (RUN, RUN),
    "remote-key": (RUN, RUN),
    "remote-jwks": (ALL, None),
    "remote-publish-jwks": (None, ADMIN),
    "remote-discover": (None, RUN),
    "remote-confirm-token-url": (None, ADMIN),
    "remote-delete": (None, RUN),
    "remote-launch": (RUN, RUN),
}
CHECKS: dict[str, tuple[frozenset[str] | None, frozenset[str] | None]] = {
    "self": (None, ADMIN),  # registers a backend client on first use
    "list": (ALL, RUN),
    "detail": (ALL, None),
    "results": (ALL, None),
}
# Deliveries to other servers' $bulk-submit and copies from them (namespace "transfers").
TRANSFERS: dict[str, tuple[frozenset[str] | None, frozenset[str] | None]] = {
    "delivery-list": (ALL, None),
    "delivery-send": (RUN, RUN),
    "delivery-copy": (RUN, RUN),
    "delivery-detail": (ALL, None),
    "delivery-complete": (None, RUN),
    "delivery-stop": (None, RUN),
}
PAGES = {
    "console": CONSOLE,
    "remotes": REMOTES,
    "remote-checks": CHECKS,
    "transfers": TRANSFERS,
}
# The operator API: DRF answers an unserved method with 405 only after the role check.
API: dict[str, tuple[frozenset[str] | None, frozenset[str] | None]] = {
    "token-list": (ALL, None),
    "token-create": (None, ALL),
    "token-revoke": (None, ALL),
    "client-list": (ALL, None),
    "client-create": (None, ADMIN),
    "client-detail": (ALL, None),
    "client-disable": (None, ADMIN),
    "client-enable": (None, ADMIN),
    "client-update": (None, ADMIN),
    "client-key-add": (None, ADMIN),
    "client-key-retire": (None, ADMIN),
    "operator-list": (ADMIN, None),
    "operator-create": (None, ADMIN),
    "operator-detail": (ADMIN, None),
    "operator-set-role": (None, ADMIN),
    "operator-deactivate": (None, ADMIN),
    "operator-reactivate": (None, ADMIN),
    "operator-reset-password": (None, ADMIN),
    "audit-event-list": (AUDIT, None),
    "job-list": (ALL, None),
    "job-launch": (None, RUN),
    "job-detail": (ALL, None),
    "job-delete": (None, RUN),
    "job-cancel": (None, RUN),
    "delivery-list": (ALL, None),
    "delivery-create": (None, RUN),
    "delivery-detail": (ALL, None),
    "delivery-complete": (None, RUN),
    "delivery-stop": (None, RUN),
    "file-list": (ALL, None),
    "file-preview": (ALL, None),
    "group-list": (ALL, None),
    "group-create": (None, RUN),
    "group-detail": (ALL, None),
    "group-update": (None, RUN),
    "group-delete": (None, RUN),
    "inventory": (ALL, None),
    "schedule-list": (ALL, None),
    "schedule-create": (None, RUN),
    "schedule-detail": (ALL, None),
    "schedule-update": (None, RUN),
    "schedule-pause": (None, RUN),
    "schedule-resume": (None, RUN),
    "schedule-run": (None, RUN),
    "schedule-delete": (None, RUN),
    "api-schema": (ALL, None),
    "api-docs": (ALL, None),
}
# Everything else the resolver knows, and why it has no role matrix.
OTHER_PREFIXES = {
    "healthz": "load balancers; says nothing secret (tests/bulkops/test_healthz.py)",
    "auth/token": "the OAuth token endpoint: signed assertions, no session",
    ".well-known/": "SMART discovery is public (spec §7.1)",
    "fhir/": "bearer tokens of backend clients (tests/security/test_fhir_access.py)",
    "jwks/": "our public keys for remote servers to register by jwks_uri: public members "
    "only, one 404 for unknown and withdrawn ids (tests/remotes/test_public_jwks.py)",
    "^api/": "the API's 404 for unknown paths",
    "accounts/": "allauth's login and logout pages",
}


@dataclass(frozen=True)
class Route:
    namespace: str
    name: str
    route: str


def walk(patterns: list[Any], prefix: str = "", namespace: str = "") -> Iterator[Route]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from walk(
                pattern.url_patterns,
                prefix + str(pattern.pattern),
                pattern.namespace or namespace,
            )
        elif isinstance(pattern, URLPattern):
            yield Route(namespace, pattern.name or "", prefix + str(pattern.pattern))


def routes() -> list[Route]:
    return list(walk(get_resolver().url_patterns))


def table_for(route: Route) -> dict[str, tuple[Any, Any]] | None:
    if route.namespace in PAGES:
        return PAGES[route.namespace]
    if route.namespace == "api" or route.name in ("api-schema", "api-docs"):
        return API
    return None


def test_every_url_is_classified() -> None:
    unknown = []
    for route in routes():
        table = table_for(route)
        if table is not None:
            if route.name not in table:
                unknown.append(route)
        elif not route.route.startswith(tuple(OTHER_PREFIXES)):
            unknown.append(route)
    assert unknown == []
    named = {(r.namespace or "api", r.name) for r in routes() if table_for(r) is not None}
    expected = {(space, n) for space, table in PAGES.items() for n in table}
    assert named == expected | {("api", n) for n in API}


@pytest.fixture
def url_of(store, rsa_key) -> Any:
    """Concrete URLs for every route, with ids of rows that exist."""
    client = register_client(name="Lab", jwks=rsa_key.jwks(), scopes="system/*.read")
    job = ExportJob.objects.create(
        client=client, level="system", request_url="x", transaction_time=timezone.now()
    )
    file = stored_file(job)
    server = RemoteServer(name="lab", base_url="https://fhir.invalid/r4", client_id="us")
    server.set_private_jwk(generate_private_jwk("ES384"))
    server.save()
    ensure_role_groups()
    owner, _ = create_operator(username="owner", role="auditor")
    token = create_api_token(user=owner, name="owned")
    values = {
        "job_id": str(job.uuid),
        "file_id": str(file.uuid),
        "client_id": client.client_id,
        "token_id": str(token.token.pk),
        "user_id": str(owner.pk),
        "group_id": "g1",
        "name": server.name,
        "check_id": str(ServerCheck.objects.create(server=server).pk),
        "delivery_id": str(
            Delivery.objects.create(job=job, server=server, base_url="https://bulkops.test").uuid
        ),
        "schedule_id": str(
            ExportSchedule.objects.create(name="nightly", level="system", cron="0 2 * * *").uuid
        ),
    }

    def build(route: Route) -> str:
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], route.route)
        return "/" + path

    return build


def matrix_routes() -> list[tuple[Route, tuple[Any, Any]]]:
    return [(r, table[r.name]) for r in routes() if (table := table_for(r)) is not None]


def expectation_failures(call: Any, role: str | None, url_of: Any) -> list[tuple]:
    wrong = []
    for route, (get_roles, post_roles) in matrix_routes():
        is_api = table_for(route) is API
        for method, allowed in (("get", get_roles), ("post", post_roles)):
            response = call(method, url_of(route), is_api)
            status = response.status_code
            if allowed is None:
                ok = status in ((401, 403, 405) if is_api else (405,))
            elif role in allowed:
                to_login = response.get("Location", "").startswith("/accounts/login/")
                ok = status < 500 and status not in (401, 403) and not to_login
            else:
                ok = status == 403
            if not ok:
                wrong.append((role, method.upper(), url_of(route), status))
    return wrong


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_what_it_may(role, url_of, console_client, api_as) -> None:
    browser = console_client(role)
    api = api_as(role)

    def call(method: str, url: str, is_api: bool) -> Any:
        if is_api and url.startswith("/api/v1/"):
            return getattr(api, method)(url)
        return getattr(browser, method)(url)

    assert expectation_failures(call, role, url_of) == []


@pytest.mark.parametrize("role", ROLES)
def test_there_is_no_django_admin_to_reach(role, console_client) -> None:
    """Operators and clients are changed only through the console's services, which
    audit and keep the last-admin rule; a second door that skips them is not served."""
    browser = console_client(role)
    for path in ("/admin/", "/admin/login/", "/admin/accounts/backendclient/"):
        assert browser.get(path).status_code == 404, path


def test_anonymous_visitors_get_login_or_401(url_of) -> None:
    browser = Client()
    for route, (get_roles, post_roles) in matrix_routes():
        is_api = table_for(route) is API
        for method, allowed in (("get", get_roles), ("post", post_roles)):
            response = getattr(browser, method)(url_of(route))
            if is_api:
                assert response.status_code in (401, 403), (method, route)
            elif allowed is None:
                assert response.status_code == 405, (method, route)
            else:
                assert response.status_code == 302, (method, route)
                assert response["Location"].startswith("/accounts/login/"), route


def post_endpoints(url_of: Any) -> list[str]:
    urls = [url_of(r) for r, (_, post) in matrix_routes() if post is not None]
    return [*urls, "/accounts/login/", "/accounts/logout/"]


def post(browser: Client, url: str, **kwargs: Any) -> Any:
    """An empty form, or an empty JSON object for the API (which parses only JSON)."""
    if url.startswith("/api/"):
        return browser.post(url, {}, content_type="application/json", **kwargs)
    return browser.post(url, {}, **kwargs)


def test_every_form_post_without_the_csrf_token_is_refused(url_of) -> None:
    ensure_role_groups()
    admin, _ = create_operator(username="csrf-admin", role="admin")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin)
    assert browser.get("/tokens/").status_code == 200  # sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    urls = post_endpoints(url_of)
    assert len(urls) >= 20
    for url in urls:
        refused = post(browser, url)
        assert refused.status_code == 403, url
        assert b"CSRF" in refused.content, url
    # With the token the same posts get past the check (so the 403s above were CSRF's).
    for url in urls[:-1]:  # logging out last would end the session for the others
        response = post(browser, url, headers={"X-CSRFToken": token})
        assert response.status_code != 403 or b"CSRF" not in response.content, url


INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\ssrc=)[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(rb"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)


def test_no_page_carries_inline_script(url_of, console_client) -> None:
    """The Content-Security-Policy forbids inline script, so no page may rely on one:
    every console page the admin can open, scanned for <script> without src and for
    on*= handler attributes (the browser test checks htmx still works under the CSP)."""
    admin = console_client("admin")
    pages = [url_of(r) for r, (get, _) in matrix_routes() if table_for(r) is not API and get]
    pages += ["/api/docs/"]
    offending = []
    for url in pages:
        response = admin.get(url)
        assert response.status_code == 200, url
        content = b"".join(response) if response.streaming else response.content
        if INLINE_SCRIPT.search(content) or EVENT_HANDLER.search(content):
            offending.append(url)
    assert offending == []
    anonymous_login = Client().get("/accounts/login/").content
    assert not INLINE_SCRIPT.search(anonymous_login) and not EVENT_HANDLER.search(anonymous_login)


HOSTILE_QUERY = (
    "?"
    + "&".join(
        f"{name}=%00%3Cscript%3E"
        for name in ("q", "actor", "action", "client", "status", "level", "since", "until")
    )
    + "&page=-1&cursor=%00&offset=99999999999999999999&n=%00&line=-5"
)


def test_every_page_survives_hostile_query_and_path_values(url_of, console_client) -> None:
    """NUL bytes, markup and absurd numbers in filters and path ids: a 200/400/404 page,
    never a 500 (PostgreSQL refuses NUL in a query; that was a 500 for /clients/<id>/)."""
    admin = console_client("admin")
    failures = []
    for route, (get_roles, post_roles) in matrix_routes():
        if table_for(route) is API:
            continue
        hostile_path = "/" + re.sub(r"<(?:\w+:)?\w+>", "a%00b", route.route)
        for method, allowed in (("get", get_roles), ("post", post_roles)):
            if allowed is None:
                continue
            for url in (url_of(route) + HOSTILE_QUERY, hostile_path):
                status = getattr(admin, method)(url).status_code
                if status >= 500:
                    failures.append((method, url, status))
    assert failures == []
