"""Client key expiry: x5c certificates and JWK `exp` end a key at the token endpoint;
the rotation policy only warns. Real self-signed certificates, real signed assertions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from accounts.models import AuditEvent, BackendClient, ClientKey
from accounts.services import add_client_key, register_client, retire_client_key
from tests.conftest import JwksServer, KeyPair
from tests.smart import certified, post_token, sign_assertion

pytestmark = pytest.mark.django_db


def renamed(key: KeyPair, kid: str, **members: Any) -> tuple[KeyPair, dict[str, Any]]:
    pair = KeyPair(key.private, kid, key.alg)
    return pair, {**pair.public_jwk, **members}


def token_response(pair: KeyPair, client: BackendClient) -> Any:
    return post_token(sign_assertion(pair, client.client_id))


def test_expired_certificate_or_exp_refuses_the_key_and_says_when(rsa_key, ec_key) -> None:
    now = timezone.now()
    expired, expired_jwk = certified(rsa_key, "cert-expired", now - timedelta(days=2))
    soon, soon_jwk = certified(ec_key, "cert-soon", now + timedelta(days=10))
    lapsed, lapsed_jwk = renamed(
        rsa_key, "exp-lapsed", exp=int((now - timedelta(hours=1)).timestamp())
    )
    client = register_client(
        name="Certified", jwks={"keys": [expired_jwk, soon_jwk, lapsed_jwk]}, scopes="system/*.read"
    )

    response = token_response(expired, client)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    day = (now - timedelta(days=2)).strftime("%Y-%m-%d")
    assert response.json()["error_description"].startswith(f"Key 'cert-expired' expired on {day}")
    assert "x5c certificate" in response.json()["error_description"]

    response = token_response(lapsed, client)
    assert response.status_code == 401
    assert "Key 'exp-lapsed' expired on" in response.json()["error_description"]
    assert "JWK exp" in response.json()["error_description"]
    refusals = AuditEvent.objects.filter(actor=client.client_id, outcome="failure")
    assert list(refusals.values_list("reason", flat=True)) == ["key_expired", "key_expired"]

    assert token_response(soon, client).status_code == 200  # 10 days left: still usable


def test_a_renewed_certificate_at_the_jwks_uri_is_fetched_again(
    rsa_key, ec_key, jwks_server: JwksServer
) -> None:
    now = timezone.now()
    old, old_jwk = certified(rsa_key, "rotating", now - timedelta(days=1))
    current = {"keys": [old_jwk, ec_key.public_jwk]}
    jwks_server.jwks, jwks_server.cache_control = current, "max-age=3600"
    client = register_client(name="By URL", jwks_uri=jwks_server.url, scopes="system/*.read")
    assert token_response(old, client).status_code == 401

    _, renewed_jwk = certified(rsa_key, "rotating", now + timedelta(days=300))
    jwks_server.jwks = {"keys": [renewed_jwk, ec_key.public_jwk]}
    assert token_response(old, client).status_code == 200  # same kid, renewed certificate


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"x5c": ["not base64!"]}, "its x5c certificate does not parse"),
        ({"x5c": "MIIB"}, "x5c must be a non-empty array"),
        ({"exp": "tomorrow"}, "exp must be a number of seconds since 1970"),
    ],
)
def test_unreadable_expiry_makes_the_key_unusable(rsa_key, members, message) -> None:
    _, jwk = renamed(rsa_key, "odd", **members)
    with pytest.raises(ValidationError) as refused:
        register_client(name="Odd", jwks={"keys": [jwk]}, scopes="system/*.read")
    assert message in refused.value.message_dict["jwks"][0]


def test_a_certificate_for_another_key_is_refused(rsa_key, other_rsa_key) -> None:
    _, foreign = certified(other_rsa_key, "k", timezone.now() + timedelta(days=100))
    _, jwk = renamed(rsa_key, "k", x5c=foreign["x5c"])
    with pytest.raises(ValidationError) as refused:
        register_client(name="Mixed", jwks={"keys": [jwk]}, scopes="system/*.read")
    assert "its x5c certificate is for another key" in refused.value.message_dict["jwks"][0]


def test_keys_that_already_ended_are_refused_where_they_are_given(
    rsa_key, ec_key, jwks_server
) -> None:
    yesterday = timezone.now() - timedelta(days=1)
    _, gone = certified(rsa_key, "gone", yesterday)
    _, lapsed = renamed(ec_key, "lapsed", exp=int(yesterday.timestamp()))
    expected = f"Every usable key has expired ('gone' on {yesterday:%Y-%m-%d}"
    with pytest.raises(ValidationError) as refused:
        register_client(name="Stale", jwks={"keys": [gone, lapsed]}, scopes="system/*.read")
    assert refused.value.message_dict["jwks"][0].startswith(expected)
    jwks_server.jwks = {"keys": [gone]}
    with pytest.raises(ValidationError) as refused:
        register_client(name="Stale", jwks_uri=jwks_server.url, scopes="system/*.read")
    assert refused.value.message_dict["jwks_uri"][0].startswith(expected)
    assert not BackendClient.objects.exists()

    client = register_client(name="Fresh", jwks=ec_key.jwks(), scopes="system/*.read")
    with pytest.raises(ValidationError) as refused:
        add_client_key(client_id=client.client_id, jwk=gone, actor=None)
    assert refused.value.message_dict["jwk"][0].startswith(expected)
    client.refresh_from_db()
    assert [key["kid"] for key in client.jwks["keys"]] == ["ec-1"]


def added_dates(client: BackendClient) -> dict[str, datetime]:
    return dict(ClientKey.objects.filter(client=client).values_list("kid", "added_at"))


def test_services_date_every_key_they_add_and_forget_retired_ones(rsa_key, ec_key) -> None:
    client = register_client(name="Rotating", jwks=rsa_key.jwks(), scopes="system/*.read")
    first = added_dates(client)
    assert list(first) == ["rsa-1"]
    add_client_key(client_id=client.client_id, jwk=ec_key.public_jwk, actor=None)
    both = added_dates(client)
    assert both["rsa-1"] == first["rsa-1"] and both["ec-1"] >= first["rsa-1"]
    retire_client_key(client_id=client.client_id, kid="rsa-1", actor=None)
    assert list(added_dates(client)) == ["ec-1"]


def test_jwks_uri_keys_are_dated_when_first_seen(rsa_key, ec_key, jwks_server) -> None:
    jwks_server.jwks = rsa_key.jwks()
    client = register_client(name="By URL", jwks_uri=jwks_server.url, scopes="system/*.read")
    first_seen = added_dates(client)["rsa-1"]
    jwks_server.jwks = {"keys": [rsa_key.public_jwk, ec_key.public_jwk]}
    assert token_response(ec_key, client).status_code == 200  # unknown kid: set refetched
    dates = added_dates(client)
    assert dates["rsa-1"] == first_seen and dates["ec-1"] > first_seen


def test_dashboard_and_client_page_list_keys_near_expiry(console_client, rsa_key, settings) -> None:
    settings.BULKOPS_KEY_EXPIRY_WARNING_DAYS = 30
    settings.BULKOPS_CLIENT_KEY_MAX_AGE_DAYS = 365
    now = timezone.now()
    _, soon = certified(rsa_key, "cert-soon", now + timedelta(days=10))
    _, gone = certified(rsa_key, "cert-gone", now - timedelta(days=3))
    _, later = certified(rsa_key, "cert-later", now + timedelta(days=200))
    _, plain = renamed(rsa_key, "plain-old")
    client = register_client(
        name="Health <check>", jwks={"keys": [soon, gone, later, plain]}, scopes="system/*.read"
    )
    ClientKey.objects.filter(client=client, kid="plain-old").update(
        added_at=now - timedelta(days=400)
    )
    browser = console_client("auditor")

    panel = browser.get("/").content.decode().split('id="expiring-keys"')[1].split("</table>")[0]
    rows = panel.split("<tr>")[2:]
    assert [row.split('class="mono">')[1].split("<")[0] for row in rows] == [
        "plain-old",  # policy date, 35 days ago
        "cert-gone",
        "cert-soon",
    ]
    assert "Health &lt;check&gt;" in panel and "<check>" not in panel
    assert "rotate now" in rows[0] and "rotation policy: 365 days" in rows[0]
    assert "expired: refused" in rows[1] and "x5c certificate" in rows[1]
    assert "expires soon" in rows[2] and (now + timedelta(days=10)).strftime("%Y-%m-%d") in rows[2]

    detail = browser.get(f"/clients/{client.client_id}/").content.decode()
    assert 'class="key-expired"><td class="mono">cert-gone' in detail
    assert 'class="key-expiring"><td class="mono">cert-soon' in detail
    assert 'class="key-rotate"><td class="mono">plain-old' in detail
    assert '<tr><td class="mono">cert-later' in detail

    settings.BULKOPS_CLIENT_KEY_MAX_AGE_DAYS = 0  # no policy: only the certificates count
    panel = browser.get("/").content.decode().split('id="expiring-keys"')[1].split("</table>")[0]
    assert "plain-old" not in panel and "cert-gone" in panel


def test_disabled_clients_keys_are_not_listed(console_client, rsa_key, ec_key) -> None:
    _, gone = certified(rsa_key, "cert-gone", datetime.now(UTC) - timedelta(days=3))
    client = register_client(
        name="Off", jwks={"keys": [gone, ec_key.public_jwk]}, scopes="system/*.read"
    )
    BackendClient.objects.filter(pk=client.pk).update(status=BackendClient.Status.DISABLED)
    page = console_client("auditor").get("/").content.decode()
    assert 'id="expiring-keys"' not in page


@pytest.mark.django_db(transaction=True)
def test_migration_dates_existing_keys_at_their_clients_creation(rsa_key, ec_key) -> None:
    before, after = [("accounts", "0004_add_api_tokens")], [("accounts", "0005_client_key_records")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    created = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    clients = old.get_model("accounts", "BackendClient").objects
    clients.create(name="Inline", client_id="inline1", jwks=rsa_key.jwks(), scopes="system/*.read")
    by_url = clients.create(
        name="By URL", client_id="url1", jwks_uri="https://keys.test/jwks", scopes="system/*.read"
    )
    old.get_model("accounts", "CachedJwks").objects.create(
        client=by_url, jwks=ec_key.jwks(), fetched_at=created, expires_at=created
    )
    clients.update(created_at=created)

    executor = MigrationExecutor(connection)
    executor.migrate(after)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    records = ClientKey.objects.order_by("kid").values_list("client__client_id", "kid", "added_at")
    assert list(records) == [("url1", "ec-1", created), ("inline1", "rsa-1", created)]
