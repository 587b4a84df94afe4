"""Console sign-in lock-outs: per username and address together, stored in the database
that every web process shares (accounts/lockout.py, django-axes)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from axes.models import AccessAttempt
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.models import AuditEvent
from accounts.services import create_operator
from tests.accounts.conftest import ensure_role_groups
from tests.processes import manage, process_env

pytestmark = pytest.mark.django_db

ADDRESS_A = "192.0.2.10"
ADDRESS_B = "198.51.100.20"
LOCKED_OUT = "Too many failed sign-ins for this username from your address."
# Run in a fresh process: ada's right password from each address, the statuses as JSON.
SIGN_IN_FROM_EACH_ADDRESS = """
import json, os
from django.test import Client
form = {"login": "ada", "password": os.environ["ADA_PASSWORD"]}
statuses = {
    address: Client(REMOTE_ADDR=address).post("/accounts/login/", form).status_code
    for address in os.environ["ADDRESSES"].split()
}
print(json.dumps(statuses))
"""


@pytest.fixture(autouse=True)
def fresh_allauth_limits() -> None:
    """allauth still limits sign-in requests per address (30 a minute) in this process's
    cache; each test starts with that budget full."""
    cache.clear()


def create_ada() -> str:
    """Create the operator "ada"; return her password."""
    ensure_role_groups()
    return create_operator(username="ada", role="operator")[1]


@pytest.fixture
def ada(settings: Any) -> str:
    """ada's password, hashed fast: every attempt checks it twice (Django's backend, then
    allauth's), and PBKDF2's deliberate slowness buys nothing here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return create_ada()


def sign_in(address: str, login: str, password: str) -> Any:
    return Client(REMOTE_ADDR=address).post(
        "/accounts/login/", {"login": login, "password": password}
    )


def fail_until_locked(address: str, login: str = "ada") -> list[Any]:
    """As many wrong passwords as it takes to lock `address` out of `login`."""
    return [sign_in(address, login, "wrong-password") for _ in range(5)]


def test_wrong_passwords_lock_out_one_address_while_the_operator_signs_in_from_another(
    ada: str,
) -> None:
    attempts = fail_until_locked(ADDRESS_A)
    signed_in = sign_in(ADDRESS_B, "ada", ada)
    assert signed_in.status_code == 302
    assert signed_in["Location"] == "/"

    assert [r.status_code for r in attempts] == [200, 200, 200, 200, 429]
    assert b"not correct" in attempts[0].content
    refused = sign_in(ADDRESS_A, "ada", ada)  # the right password, from the locked address
    assert refused.status_code == 429
    page = refused.content.decode()
    assert LOCKED_OUT in page and "Try again in 15 minutes" in page
    assert 'class="topbar"' in page and 'name="login"' in page  # the console's login page
    assert "_auth_user_id" not in refused.client.session
    # Other usernames from the locked address are not affected.
    ensure_role_groups()
    _, grace = create_operator(username="grace", role="auditor")
    assert sign_in(ADDRESS_A, "grace", grace).status_code == 302


@pytest.mark.django_db(transaction=True)
def test_a_lockout_is_seen_by_every_process(tmp_path: Any) -> None:
    """The attempts are rows of the shared database, not counts in this process's memory:
    a fresh process refuses the locked pair and lets the other address in."""
    ada = create_ada()  # with the real hasher, which the fresh process knows
    fail_until_locked(ADDRESS_A)
    attempt = AccessAttempt.objects.get()
    assert (attempt.username, attempt.ip_address, attempt.failures_since_start) == (
        "ada",
        ADDRESS_A,
        5,
    )
    env = process_env(
        tmp_path,
        DATABASE_URL=this_runs_database_url(),
        ADA_PASSWORD=ada,
        ADDRESSES=f"{ADDRESS_A} {ADDRESS_B}",
    )
    result = manage(env, "shell", "--no-imports", "-c", SIGN_IN_FROM_EACH_ADDRESS)
    assert result.returncode == 0, result.stderr
    # The last line; log lines of the refused sign-in come before it.
    assert json.loads(result.stdout.splitlines()[-1]) == {ADDRESS_A: 429, ADDRESS_B: 302}


def test_the_username_counts_whatever_its_case(ada: str) -> None:
    for login in ("Ada", "ADA", "aDa", "adA", "ada"):
        sign_in(ADDRESS_A, login, "wrong-password")
    assert sign_in(ADDRESS_A, "ada", ada).status_code == 429


def test_a_successful_sign_in_clears_the_count(ada: str) -> None:
    for _ in range(4):
        sign_in(ADDRESS_A, "ada", "wrong-password")
    assert sign_in(ADDRESS_A, "ada", ada).status_code == 302
    for _ in range(4):
        sign_in(ADDRESS_A, "ada", "wrong-password")
    assert sign_in(ADDRESS_A, "ada", ada).status_code == 302


def test_limit_and_cool_off_follow_the_settings(ada: str, settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=30)
    sign_in(ADDRESS_A, "ada", "wrong-password")
    sign_in(ADDRESS_A, "ada", "wrong-password")
    refused = sign_in(ADDRESS_A, "ada", ada)
    assert refused.status_code == 429
    assert "Try again in 30 minutes" in refused.content.decode()
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=29))
    assert sign_in(ADDRESS_A, "ada", ada).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=31))
    assert sign_in(ADDRESS_A, "ada", ada).status_code == 302


def test_failed_and_locked_out_sign_ins_are_audited_without_secrets(
    ada: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    browser = Client(REMOTE_ADDR=ADDRESS_A, enforce_csrf_checks=True)
    csrf = browser.get("/accounts/login/").cookies["csrftoken"].value
    for password in ["first-wrong-password"] * 5 + [ada]:
        browser.post(
            "/accounts/login/",
            {"login": "ada", "password": password, "csrfmiddlewaretoken": csrf},
        )
    events = AuditEvent.objects.filter(action="operator.login").order_by("pk")
    assert [(e.actor, e.outcome, e.reason, e.ip_address) for e in events] == [
        *[("ada", "failure", "wrong username or password", ADDRESS_A)] * 4,
        *[("ada", "failure", "locked out after too many failed sign-ins", ADDRESS_A)] * 2,
    ]
    stored = " ".join(
        f"{a.username} {a.get_data} {a.post_data}" for a in AccessAttempt.objects.all()
    )
    everything = caplog.text + stored + str([e.details for e in events])
    for secret in ("first-wrong-password", ada, csrf):
        assert secret not in everything


def this_runs_database_url() -> str:
    """DATABASE_URL for a subprocess to use the database this test run uses."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user, password = quote(db["USER"] or "", safe=""), quote(db["PASSWORD"] or "", safe="")
    return f"postgres://{user}:{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
