"""Rate limiting of failed token requests: per client only for what its own key signed,
per address for everything (accounts/throttle.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.models import AccessToken, AuditEvent, BackendClient
from accounts.services import register_client
from accounts.throttle import _RECENT_FAILURES
from tests.conftest import KeyPair
from tests.smart import (
    assert_issued,
    assert_refused,
    post_form,
    sign_assertion,
    token_form,
    unsigned_assertion,
)

pytestmark = pytest.mark.django_db

ADDRESS_A = "192.0.2.10"
ADDRESS_B = "198.51.100.20"


@pytest.fixture
def rsa_client(rsa_key: KeyPair) -> BackendClient:
    return register_client(name="RSA client", jwks=rsa_key.jwks(), scopes="system/*.read")


def post_from(address: str, assertion: str, scope: str = "system/*.read") -> Any:
    return post_form(token_form(assertion, scope), Client(REMOTE_ADDR=address))


def junk(rsa_key: KeyPair, forger: KeyPair) -> list[Callable[[str], str]]:
    """What a conformance kit (or anyone) sends naming a client without its key."""
    return [
        unsigned_assertion,
        lambda client_id: sign_assertion(forger, client_id),  # another key, same kid
        lambda client_id: sign_assertion(rsa_key, client_id, headers={"kid": "unknown"}),
        lambda client_id: "not.a.jwt",
    ]


def signed_failures(rsa_key: KeyPair) -> list[Callable[[str], tuple[str, str]]]:
    """Assertions the client's own key signed that are refused anyway: (assertion, scope)."""
    return [
        lambda c: (sign_assertion(rsa_key, c, exp=int(time.time()) + 900), "system/*.read"),
        lambda c: (sign_assertion(rsa_key, c, aud="https://elsewhere/token"), "system/*.read"),
        lambda c: (sign_assertion(rsa_key, c), "user/*.read"),  # a scope it may not have
        lambda c: (sign_assertion(rsa_key, c, jti="spent"), "system/*.read"),  # replayed
    ]


def test_junk_naming_a_client_does_not_stop_its_real_requests_from_elsewhere(
    rsa_key: KeyPair, other_rsa_key: KeyPair, rsa_client: BackendClient
) -> None:
    """A conformance run of bad assertions for one client, then that client's own."""
    makers = junk(rsa_key, other_rsa_key)
    statuses = [
        post_from(ADDRESS_A, makers[number % len(makers)](rsa_client.client_id)).status_code
        for number in range(20)
    ]
    response = post_from(ADDRESS_B, sign_assertion(rsa_key, rsa_client.client_id))
    assert response.status_code == 200
    assert_issued(response)
    assert statuses == [401] * 20  # each refused for what it is, none throttled
    refused = AuditEvent.objects.filter(action="token.request", outcome="failure")
    assert {event.actor_type for event in refused} == {"unverified"}


def test_an_old_assertion_of_the_client_resent_by_anyone_does_not_throttle_it(
    rsa_key: KeyPair, rsa_client: BackendClient
) -> None:
    """An expired assertion proves only that the client signed it once; whoever has seen
    one (in a log, a proxy, a bug report) could resend it for ever."""
    old = sign_assertion(rsa_key, rsa_client.client_id, exp=int(time.time()) - 3600)
    statuses = [post_from(ADDRESS_A, old).status_code for _ in range(20)]
    response = post_from(ADDRESS_B, sign_assertion(rsa_key, rsa_client.client_id))
    assert response.status_code == 200
    assert statuses == [401] * 20


def test_a_clients_own_signed_failures_throttle_it_from_every_address(
    rsa_key: KeyPair, other_rsa_key: KeyPair, rsa_client: BackendClient, settings: Any
) -> None:
    assert_issued(post_from(ADDRESS_A, sign_assertion(rsa_key, rsa_client.client_id, jti="spent")))
    makers = signed_failures(rsa_key)
    statuses = []
    for number in range(20):
        assertion, scope = makers[number % len(makers)](rsa_client.client_id)
        statuses.append(post_from(f"203.0.113.{number}", assertion, scope).status_code)
    limit = settings.BULKOPS_TOKEN_MAX_FAILURES_PER_CLIENT
    assert 429 not in statuses[:limit] and set(statuses[limit:]) == {429}

    response = post_from(ADDRESS_B, sign_assertion(rsa_key, rsa_client.client_id))
    assert_refused(response, 429, "invalid_request")
    assert response["Retry-After"] == "300"
    assert AccessToken.objects.count() == 1
    # Another client, from the same addresses, is not affected.
    other = register_client(name="other", jwks=other_rsa_key.jwks(), scopes="system/*.read")
    assert_issued(post_from(ADDRESS_B, sign_assertion(other_rsa_key, other.client_id)))
    # Once its failures are older than the window, the client gets tokens again.
    AuditEvent.objects.filter(outcome="failure").update(
        created_at=timezone.now() - timedelta(seconds=301)
    )
    assert_issued(post_from(ADDRESS_B, sign_assertion(rsa_key, rsa_client.client_id)))


def test_unverified_junk_throttles_only_the_address_it_comes_from(
    rsa_key: KeyPair, other_rsa_key: KeyPair, rsa_client: BackendClient, settings: Any
) -> None:
    makers = junk(rsa_key, other_rsa_key)
    limit = settings.BULKOPS_TOKEN_MAX_FAILURES_PER_ADDRESS
    for number in range(limit):
        response = post_from(ADDRESS_A, makers[number % len(makers)](rsa_client.client_id))
        assert_refused(response, 401, "invalid_client")
    assert_refused(
        post_from(ADDRESS_A, unsigned_assertion(rsa_client.client_id)), 429, "invalid_request"
    )
    good = sign_assertion(rsa_key, rsa_client.client_id)
    assert_refused(post_from(ADDRESS_A, good), 429, "invalid_request")
    assert_issued(post_from(ADDRESS_B, good))


def test_limits_and_window_follow_the_settings(
    rsa_key: KeyPair, rsa_client: BackendClient, settings: Any
) -> None:
    settings.BULKOPS_TOKEN_MAX_FAILURES_PER_CLIENT = 2
    settings.BULKOPS_TOKEN_MAX_FAILURES_PER_ADDRESS = 3
    settings.BULKOPS_TOKEN_FAILURE_WINDOW = 60
    too_far = int(time.time()) + 900
    for _ in range(2):
        response = post_from(ADDRESS_A, sign_assertion(rsa_key, rsa_client.client_id, exp=too_far))
        assert_refused(response, 401, "invalid_client")
    response = post_from(ADDRESS_B, sign_assertion(rsa_key, rsa_client.client_id))
    assert_refused(response, 429, "invalid_request")
    assert response["Retry-After"] == "60"

    AuditEvent.objects.update(created_at=timezone.now() - timedelta(seconds=61))
    assert_issued(post_from(ADDRESS_B, sign_assertion(rsa_key, rsa_client.client_id)))
    for _ in range(3):
        post_from(ADDRESS_A, "not.a.jwt")
    response = post_from(ADDRESS_A, sign_assertion(rsa_key, rsa_client.client_id))
    assert_refused(response, 429, "invalid_request")


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's planner rules")
def test_both_counts_use_the_partial_indexes_of_failed_requests() -> None:
    """SQLite uses a partial index only when the query repeats its WHERE terms
    literally: the throttle's SQL must keep matching `audit_failed_token_*`."""
    since = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {_RECENT_FAILURES}", ["c", since, "192.0.2.1", since])
        plan = " ".join(str(row) for row in cursor.fetchall())
    assert "USING INDEX audit_failed_token_actor" in plan
    assert "USING INDEX audit_failed_token_ip" in plan
