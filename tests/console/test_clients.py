"""Backend client pages: who may see and change clients, and what they see."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.utils import timezone
from jwt.algorithms import RSAAlgorithm

from accounts.models import AccessToken, AuditEvent, BackendClient
from accounts.services import register_client
from bulkops.signing_keys import thumbprint
from tests.smart import certified

pytestmark = pytest.mark.django_db


def form(jwks: Any = "", **fields: str) -> dict[str, Any]:
    data = {"name": "Registry", "syntax": "v1", "scope_types": ["Patient", "Observation"]}
    data["jwks"] = json.dumps(jwks) if not isinstance(jwks, str) else jwks
    return {**data, **fields}


@pytest.mark.parametrize(
    ("role", "status"), [("admin", 200), ("operator", 200), ("auditor", 200), (None, 403)]
)
def test_client_list_is_for_console_roles(console_client, role, status) -> None:
    assert console_client(role).get("/clients/").status_code == status


def test_client_list_sorts_and_pages(console_client, rsa_key, settings) -> None:
    for name in ("Bravo", "alpha", "Charlie"):
        register_client(name=name, jwks=rsa_key.jwks(), scopes="system/*.read")
    browser = console_client("auditor")

    def names(**query: str) -> list[str]:
        page = browser.get("/clients/", query).content.decode().split("<tbody>")[1]
        return [cell.split("</a>")[0].split(">")[-1] for cell in page.split("<tr>")[1:]]

    assert names() == ["alpha", "Bravo", "Charlie"]  # by name, ignoring case
    assert names(sort="-name") == ["Charlie", "Bravo", "alpha"]
    assert names(sort="-created") == ["Charlie", "alpha", "Bravo"]
    assert names(sort="name; DROP TABLE") == ["alpha", "Bravo", "Charlie"]  # unknown: default
    page = browser.get("/clients/", {"sort": "-name", "q": "a"}).content.decode()
    assert 'href="?q=a&sort=name"' in page  # sorting keeps the filter

    BackendClient.objects.bulk_create(
        BackendClient(name=f"Zulu {n:02d}", jwks=rsa_key.jwks(), scopes="system/*.read")
        for n in range(48)
    )
    assert names()[-1] == "Zulu 46" and len(names()) == 50
    assert names(page="2") == ["Zulu 47"]
    second = browser.get("/clients/", {"page": "2", "sort": "name"}).content.decode()
    assert "Page 2 of 2 · 51 clients" in second and 'href="?sort=name&page=1"' in second


def test_anonymous_visitor_is_sent_to_login(client) -> None:
    response = client.get("/clients/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("role", ["operator", "auditor", None])
def test_only_admins_register_clients(console_client, rsa_key, role) -> None:
    browser = console_client(role)
    assert browser.get("/clients/new/").status_code == 403
    assert browser.post("/clients/new/", form(rsa_key.jwks())).status_code == 403
    assert not BackendClient.objects.exists()


def test_admin_registers_client_by_pasting_jwks(console_client, rsa_key) -> None:
    browser = console_client("admin")
    response = browser.post("/clients/new/", form(rsa_key.jwks()), follow=True)
    client = BackendClient.objects.get()
    assert response.redirect_chain[-1][0] == f"/clients/{client.client_id}/"
    page = response.content.decode()
    assert "Registered Registry" in page
    assert client.client_id in page
    assert "rsa-1" in page and "RS384" in page
    assert client.scopes == "system/Patient.read system/Observation.read"
    event = AuditEvent.objects.get(action="client.registered")
    assert (event.actor_type, event.actor) == ("operator", "admin-user")


def test_checklist_writes_v2_scopes_and_keeps_other_scopes(console_client, rsa_key) -> None:
    data = form(rsa_key.jwks(), syntax="v2", extra_scopes="system/Condition.rs?category=x")
    console_client("admin").post("/clients/new/", data)
    assert BackendClient.objects.get().scopes == (
        "system/Patient.rs system/Observation.rs system/Condition.rs?category=x"
    )


def test_jwks_uri_registration_fetches_the_keys(console_client, rsa_key, jwks_server) -> None:
    jwks_server.jwks = rsa_key.jwks()
    response = console_client("admin").post(
        "/clients/new/", form(jwks_uri=jwks_server.url), follow=True
    )
    assert BackendClient.objects.get().jwks_uri == jwks_server.url
    assert "rsa-1" in response.content.decode()


def small_rsa_jwks() -> dict[str, Any]:
    key = rsa.generate_private_key(65537, 1024)  # noqa: S505 - the key must be refused
    return {"keys": [{**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": "small"}]}


@pytest.mark.parametrize(
    ("case", "field", "message"),
    [
        ("private", "jwks", "contains private key material"),
        ("small", "jwks", "RSA key is 1024 bits; at least 2048 are required"),
        ("not-json", "jwks", "The pasted JWK Set is not valid JSON."),
        ("bad-scope", "extra_scopes", "Not a system/ resource scope: patient/Foo.read"),
        ("unreachable", "jwks_uri", "Could not fetch the JWKS URL"),
        ("no-name", "name", "This field is required."),
        ("unknown-group", "groups", "No such Group: nope."),
    ],
)
def test_bad_input_is_explained_next_to_its_field(
    console_client, rsa_key, settings, case, field, message
) -> None:
    settings.BULKOPS_ALLOW_HTTP_JWKS = True
    data = {
        "private": form({"keys": [rsa_key.private_jwk]}),
        "small": form(small_rsa_jwks()),
        "not-json": form("{not json"),
        "bad-scope": form(rsa_key.jwks(), extra_scopes="patient/Foo.read"),
        "unreachable": form(jwks_uri="http://127.0.0.1:9/jwks.json"),
        "no-name": form(rsa_key.jwks(), name=""),
        "unknown-group": form(rsa_key.jwks(), groups="nope"),
    }[case]
    response = console_client("admin").post("/clients/new/", data)
    assert response.status_code == 200
    field_html = response.content.decode().split(f'id="field-{field}"')[1].split("</div>")[0]
    assert message in field_html.replace("&#x27;", "'")
    assert not BackendClient.objects.exists()


def test_fetch_and_check_lists_every_key(console_client, rsa_key, ec_key, jwks_server) -> None:
    jwks_server.jwks = {"keys": [rsa_key.public_jwk, ec_key.public_jwk]}
    response = console_client("admin").post(
        "/clients/check-keys/", {"jwks_uri": jwks_server.url}, headers={"HX-Request": "true"}
    )
    page = response.content.decode()
    assert page.lstrip().startswith('<div id="jwks-check"')
    assert "rsa-1" in page and "RS384" in page and "2048 bits" in page
    assert "ec-1" in page and "ES384" in page and "384 bits" in page
    assert page.count(">usable</span>") == 2
    assert AuditEvent.objects.filter(action="client.keys_checked", outcome="success").exists()


def test_fetch_and_check_reports_a_private_key(console_client, rsa_key) -> None:
    response = console_client("admin").post(
        "/clients/check-keys/", {"jwks": json.dumps({"keys": [rsa_key.private_jwk]})}
    )
    assert "contains private key material" in response.content.decode().replace("&#x27;", "'")


def test_fetch_and_check_says_when_each_key_expires(console_client, rsa_key, ec_key) -> None:
    now = timezone.now()
    _, gone = certified(rsa_key, "cert-gone", now - timedelta(days=1))
    _, soon = certified(ec_key, "cert-soon", now + timedelta(days=5))
    jwks = {"keys": [gone, soon, rsa_key.public_jwk]}
    response = console_client("admin").post("/clients/check-keys/", {"jwks": json.dumps(jwks)})
    rows = response.content.decode().split("<tbody>")[1].split("<tr>")[1:]
    assert ">expired</span>" in rows[0] and "expired: refused" in rows[0]
    assert ">usable</span>" in rows[1] and "expires soon" in rows[1]
    assert ">usable</span>" in rows[2] and "rotation policy: 365 days" in rows[2]
    assert (now + timedelta(days=365)).strftime("%Y-%m-%d") in rows[2]


@pytest.fixture
def registered(rsa_key) -> BackendClient:
    return register_client(name="Analytics", jwks=rsa_key.jwks(), scopes="system/*.read")


def test_detail_shows_keys_scopes_and_audit_but_never_token_hashes(
    console_client, registered
) -> None:
    from django.utils import timezone

    from accounts.services import issue_access_token

    issued = issue_access_token(client=registered, scopes=["system/*.read"], now=timezone.now())
    page = console_client("auditor").get(f"/clients/{registered.client_id}/").content.decode()
    assert "Analytics" in page and "system/*.read" in page and "rsa-1" in page
    assert "client.registered" in page and "token.request" in page
    assert issued.raw not in page
    assert AccessToken.objects.get().token_hash not in page
    assert "Disable" not in page  # auditors change nothing
    # The thumbprint PEM signers send as kid, and that it is accepted.
    assert thumbprint(registered.jwks["keys"][0]) in page
    assert "RFC 7638 thumbprint" in page and "cumulus-etl" in page


def test_unknown_client_is_404(console_client) -> None:
    assert console_client("admin").get("/clients/nope/").status_code == 404


def test_admin_disables_and_enables_with_htmx(console_client, registered) -> None:
    browser = console_client("admin")
    url = f"/clients/{registered.client_id}"
    response = browser.post(f"{url}/disable/", headers={"HX-Request": "true"})
    assert (
        response.content.decode()
        .lstrip()
        .startswith(f'<div id="client-{registered.client_id}-status"')
    )
    assert "disabled" in response.content.decode() and "Enable" in response.content.decode()
    registered.refresh_from_db()
    assert registered.status == "disabled"
    response = browser.post(f"{url}/enable/")
    assert response.status_code == 302
    registered.refresh_from_db()
    assert registered.is_active
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", "actor"))
    assert actions[-2:] == [("client.disabled", "admin-user"), ("client.enabled", "admin-user")]


@pytest.mark.parametrize("role", ["operator", "auditor"])
def test_non_admins_cannot_disable(console_client, registered, role) -> None:
    response = console_client(role).post(f"/clients/{registered.client_id}/disable/")
    assert response.status_code == 403
    registered.refresh_from_db()
    assert registered.is_active


def test_status_changes_need_post(console_client, registered) -> None:
    assert (
        console_client("admin").get(f"/clients/{registered.client_id}/disable/").status_code == 405
    )


def test_list_filters_and_flags_clients_that_export_nothing(console_client, rsa_key) -> None:
    register_client(name="Reader", jwks=rsa_key.jwks(), scopes="system/*.read")
    register_client(name="Writer", jwks=rsa_key.jwks(), scopes="system/Patient.write")
    page = console_client("operator").get("/clients/?q=writ").content.decode()
    assert "Writer" in page and "Reader" not in page
    assert "exports nothing" in page


def test_admin_edits_name_scopes_and_groups_and_tokens_are_revoked(
    console_client, registered, store
) -> None:
    from django.utils import timezone

    from accounts.services import issue_access_token

    issue_access_token(client=registered, scopes=["system/*.read"], now=timezone.now())
    browser = console_client("admin")
    page = browser.get(f"/clients/{registered.client_id}/edit/").content.decode()
    assert 'value="Analytics"' in page
    assert 'name="scope_types" value="*" id="id_scope_types_0" checked' in page
    response = browser.post(
        f"/clients/{registered.client_id}/edit/",
        {"name": "Analytics 2", "scope_types": ["Patient"], "syntax": "v2", "groups": "g1"},
    )
    assert response.status_code == 302
    registered.refresh_from_db()
    assert (registered.name, registered.scopes) == ("Analytics 2", "system/Patient.rs")
    assert list(registered.bound_groups.values_list("group_id", flat=True)) == ["g1"]
    assert not AccessToken.objects.filter(client=registered).exists()
    event = AuditEvent.objects.get(action="client.updated")
    assert event.details["changed"]["scopes"] == ["system/*.read", "system/Patient.rs"]


def test_bad_edit_is_explained_next_to_the_field(console_client, registered) -> None:
    response = console_client("admin").post(
        f"/clients/{registered.client_id}/edit/",
        {"name": "x", "syntax": "v1", "extra_scopes": "launch/patient", "groups": "missing"},
    )
    page = response.content.decode()
    scopes = page.split('id="field-extra_scopes"')[1].split("</div>")[0]
    groups = page.split('id="field-groups"')[1].split("</div>")[0]
    assert "Not a system/ resource scope: launch/patient" in scopes
    assert "No such Group: missing." in groups
    registered.refresh_from_db()
    assert registered.name == "Analytics"


@pytest.mark.parametrize("role", ["operator", "auditor"])
def test_only_admins_edit_and_rotate(console_client, registered, ec_key, role) -> None:
    browser = console_client(role)
    url = f"/clients/{registered.client_id}"
    assert browser.get(f"{url}/edit/").status_code == 403
    assert browser.post(f"{url}/keys/", {"jwk": json.dumps(ec_key.public_jwk)}).status_code == 403
    assert browser.post(f"{url}/keys/retire/", {"kid": "rsa-1"}).status_code == 403
    registered.refresh_from_db()
    assert [k["kid"] for k in registered.jwks["keys"]] == ["rsa-1"]


def test_rotate_keys_add_new_then_retire_old(console_client, registered, ec_key) -> None:
    browser = console_client("admin")
    url = f"/clients/{registered.client_id}"
    refused = browser.post(f"{url}/keys/retire/", {"kid": "rsa-1"}, follow=True)
    assert "would leave no usable key" in refused.content.decode().replace("&#x27;", "'")
    browser.post(f"{url}/keys/", {"jwk": json.dumps(ec_key.jwks())})
    response = browser.post(f"{url}/keys/retire/", {"kid": "rsa-1"}, follow=True)
    assert "Retired key rsa-1." in response.content.decode()
    registered.refresh_from_db()
    assert [k["kid"] for k in registered.jwks["keys"]] == ["ec-1"]
    actions = AuditEvent.objects.filter(action__startswith="client.key").order_by("pk")
    assert [(e.action, e.details["kid"]) for e in actions] == [
        ("client.key_added", "ec-1"),
        ("client.key_retired", "rsa-1"),
    ]


@pytest.mark.parametrize(
    ("jwk", "message"),
    [
        ("private", "contains private key material"),
        ("duplicate", "Every key needs its own kid"),
        ("{oops", "The key is not valid JSON."),
    ],
)
def test_bad_new_key_is_explained_next_to_the_field(
    console_client, registered, rsa_key, jwk, message
) -> None:
    value = {
        "private": json.dumps(rsa_key.private_jwk),
        "duplicate": json.dumps(rsa_key.public_jwk),
        "{oops": "{oops",
    }[jwk]
    response = console_client("admin").post(
        f"/clients/{registered.client_id}/keys/", {"jwk": value}
    )
    assert response.status_code == 400
    field = response.content.decode().split('id="field-jwk"')[1].split("</div>")[0]
    assert message in field.replace("&#x27;", "'")
    registered.refresh_from_db()
    assert len(registered.jwks["keys"]) == 1


def test_scope_preview_shows_the_chosen_syntax(console_client) -> None:
    browser = console_client("admin")
    data = {"scope_types": ["*", "Patient"], "syntax": "v2", "extra_scopes": "system/Group.r"}
    response = browser.post("/clients/scope-preview/", data, headers={"HX-Request": "true"})
    text = response.content.decode()
    assert text.startswith('<p id="scope-preview"')
    assert "system/*.rs system/Patient.rs system/Group.r" in text
    v1 = browser.post("/clients/scope-preview/", {**data, "syntax": "v1"}).content.decode()
    assert "system/*.read system/Patient.read" in v1
    assert console_client("operator").post("/clients/scope-preview/", data).status_code == 403


def test_scope_checklist_offers_every_r4_type_those_with_data_first(console_client, store) -> None:
    from bulkops.fhir.resource_types import R4_RESOURCE_TYPES

    page = console_client("admin").get("/clients/new/").content.decode()
    checklist = page.split('id="scope-checklist"')[1].split("</fieldset>")[0]
    values = re.findall(r'name="scope_types" value="([^"]+)"', checklist)
    assert set(values) == R4_RESOURCE_TYPES | {"*"} and len(values) == 147
    assert values[:6] == ["*", "Condition", "Group", "Observation", "Patient", "Practitioner"]
    assert "Observation (6 stored)" in checklist
    assert 'data-filter-list="scope-checklist"' in page and "js/checklist-filter.js" in page


@pytest.mark.parametrize("scopes", ["system/Patient.write", "system/Observation.rs?category=lab"])
def test_scopes_that_read_nothing_are_refused_before_saving(
    console_client, rsa_key, registered, scopes
) -> None:
    browser = console_client("admin")
    response = browser.post(
        "/clients/new/", form(rsa_key.jwks(), scope_types=[], extra_scopes=scopes)
    )
    field = response.content.decode().split('id="field-extra_scopes"')[1].split("</div>")[0]
    assert "These scopes let the client read nothing" in html.unescape(field)
    assert not BackendClient.objects.filter(name="Registry").exists()
    edit = browser.post(
        f"/clients/{registered.client_id}/edit/",
        {"name": "Analytics", "syntax": "v1", "extra_scopes": scopes, "groups": ""},
    )
    assert "These scopes let the client read nothing" in html.unescape(edit.content.decode())
    registered.refresh_from_db()
    assert registered.scopes == "system/*.read"


def test_edit_page_ticks_the_registered_scopes_and_keeps_the_others(
    console_client, rsa_key
) -> None:
    client = register_client(
        name="Mixed",
        jwks=rsa_key.jwks(),
        scopes="system/Patient.rs system/Condition.rs system/Observation.rs?category=lab",
    )
    page = console_client("admin").get(f"/clients/{client.client_id}/edit/").content.decode()
    ticked = re.findall(r'name="scope_types" value="(\w+)"[^>]*checked', page)
    assert ticked == ["Condition", "Patient"]
    assert re.search(r'name="syntax" value="v2"[^>]*checked', page)
    assert 'value="system/Observation.rs?category=lab"' in page


def test_retiring_a_key_asks_first(console_client, registered, ec_key) -> None:
    browser = console_client("admin")
    browser.post(f"/clients/{registered.client_id}/keys/", {"jwk": json.dumps(ec_key.public_jwk)})
    page = browser.get(f"/clients/{registered.client_id}/").content.decode()
    assert (
        'hx-confirm="Retire key rsa-1? Assertions signed with it are refused from then on."' in page
    )
    response = browser.post(
        f"/clients/{registered.client_id}/keys/retire/",
        {"kid": "rsa-1"},
        headers={"HX-Request": "true"},
    )
    assert response["HX-Redirect"] == f"/clients/{registered.client_id}/"
    registered.refresh_from_db()
    assert "rsa-1" not in [key["kid"] for key in registered.jwks["keys"]]
