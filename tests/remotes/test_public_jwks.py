"""Our public key set for a remote at a URL without sign-in (/jwks/<id>.json), for servers
that register clients by jwks_uri: public members only, an id instead of the remote's
name, one 404 for every id that serves nothing, switched by admins only, audited."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.test import Client

from accounts.models import AuditEvent
from accounts.services import register_client
from bulkops.signing_keys import generate_private_jwk
from exports.bulk_client import TokenSource
from remotes.models import RemoteServer
from remotes.public_jwks import PUBLIC_MEMBERS
from tests.remotes.conftest import make_server

URL = re.compile(r"http://testserver(/jwks/[0-9a-f-]{36}\.json)")


def published_path(page: str) -> str:
    match = URL.search(page)
    assert match, "the remote's page shows no public key set URL"
    return match.group(1)


@pytest.fixture
def server(db) -> RemoteServer:
    # An uploaded key may carry members of its own: none of them is published.
    key = {**generate_private_jwk("ES384"), "name": "lab key of St Elsewhere", "x5u": "x"}
    return make_server("st-elsewhere-lab", "https://lab.invalid/fhir", "us", key)


def test_the_remote_page_shows_a_url_serving_only_public_members_to_anyone(server, console_client):
    path = published_path(
        console_client("auditor").get(f"/remotes/{server.name}/").content.decode()
    )
    assert server.name not in path

    response = Client().get(path)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "public, max-age=300"
    (key,) = json.loads(response.content)["keys"]
    assert set(key) <= set(PUBLIC_MEMBERS)
    assert key == {
        name: server.public_jwks["keys"][0][name]
        for name in ("kty", "crv", "x", "y", "kid", "alg", "use")
    }
    assert b"Elsewhere" not in response.content and b"elsewhere" not in response.content


@pytest.mark.django_db
def test_the_url_stays_when_the_key_is_replaced_and_then_serves_the_new_key(server, console_client):
    admin = console_client("admin")
    before = published_path(admin.get(f"/remotes/{server.name}/").content.decode())
    admin.post(f"/remotes/{server.name}/key/", {"source": "RS384"})
    server.refresh_from_db()

    assert published_path(admin.get(f"/remotes/{server.name}/").content.decode()) == before
    (key,) = json.loads(Client().get(before).content)["keys"]
    assert (key["kty"], key["kid"]) == ("RSA", server.kid)


def answer(path: str) -> tuple[int, bytes, list[tuple[str, str]]]:
    response = Client().get(path)
    return response.status_code, response.content, sorted(response.headers.items())


def test_withdrawn_unknown_and_deleted_key_sets_get_the_same_404(server, console_client):
    admin = console_client("admin")
    path = published_path(admin.get(f"/remotes/{server.name}/").content.decode())
    gone = make_server("gone", "https://gone.invalid/fhir", "us", generate_private_jwk("ES384"))
    gone_path = f"/jwks/{gone.jwks_id}.json"
    assert Client().get(gone_path).status_code == 200
    gone.delete()

    response = admin.post(f"/remotes/{server.name}/publish-jwks/", {"publish": "off"}, follow=True)
    assert "Public key set withdrawn." in response.content.decode()

    withdrawn = answer(path)
    assert withdrawn[0] == 404 and b"keys" not in withdrawn[1]
    assert withdrawn == answer(gone_path) == answer(f"/jwks/{uuid.uuid4()}.json")
    page = admin.get(f"/remotes/{server.name}/").content.decode()
    assert "Not published at a URL" in page and not URL.search(page)


@pytest.mark.parametrize("role", ["operator", "auditor", None])
def test_only_admins_switch_it(server, console_client, role):
    response = console_client(role).post(
        f"/remotes/{server.name}/publish-jwks/", {"publish": "off"}
    )
    assert response.status_code == 403
    assert RemoteServer.objects.get(pk=server.pk).publish_jwks is True


def test_each_switch_is_audited_and_a_bad_value_changes_nothing(server, console_client):
    admin = console_client("admin")
    url = f"/remotes/{server.name}/publish-jwks/"
    admin.post(url, {"publish": "off"})
    admin.post(url, {"publish": "on"})
    response = admin.post(url, {"publish": "maybe"}, follow=True)

    assert "Nothing changed" in response.content.decode()
    assert RemoteServer.objects.get(pk=server.pk).publish_jwks is True
    events = AuditEvent.objects.filter(action__startswith="remote.jwks.").order_by("pk")
    assert [(e.action, e.actor, e.details) for e in events] == [
        (action, "admin-user", {"server": server.name, "kid": server.kid})
        for action in ("remote.jwks.withdrawn", "remote.jwks.published")
    ]


@pytest.mark.django_db(transaction=True)
def test_a_server_that_registers_us_by_jwks_uri_accepts_our_assertions(live_server, settings):
    """bulkops itself as the other server: it registers a client from our URL, fetched
    over HTTP, and issues a token for an assertion signed with the remote's key."""
    settings.BULKOPS_ALLOW_HTTP_JWKS = True
    private = generate_private_jwk("ES384")
    server = make_server("us-there", f"{live_server.url}/fhir", "pending", private)

    client = register_client(
        name="bulkops elsewhere",
        jwks_uri=f"{live_server.url}/jwks/{server.jwks_id}.json",
        scopes="system/*.read",
    )
    tokens = TokenSource(
        f"{live_server.url}/auth/token", client.client_id, private, "system/*.read"
    )

    assert tokens.token()
