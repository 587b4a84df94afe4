"""The audit trail page: read-only, filterable, linked, exportable as CSV."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.utils import timezone

from accounts.audit import record_event
from accounts.models import AuditEvent
from accounts.services import register_client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("role", "status"), [("admin", 200), ("auditor", 200), ("operator", 403), (None, 403)]
)
def test_audit_trail_is_for_auditors_and_admins(console_client, role, status) -> None:
    browser = console_client(role)
    assert browser.get("/audit/").status_code == status
    assert browser.get("/audit/export.csv").status_code == status


def test_nothing_in_the_trail_can_be_changed(console_client) -> None:
    record_event(actor_type="system", actor="x", action="test.event")
    browser = console_client("admin")
    for method in (browser.post, browser.put, browser.delete):
        assert method("/audit/").status_code == 405
    page = browser.get("/audit/").content.decode()
    assert '<form method="post"' not in page.split("<main>")[1]
    assert AuditEvent.objects.filter(action="test.event").count() == 1


@pytest.fixture
def trail(rsa_key):
    client = register_client(name="Lab", jwks=rsa_key.jwks(), scopes="system/*.read")
    job = client.export_jobs.create(
        level="system", request_url="x", transaction_time=timezone.now()
    )
    record_event(
        actor_type="client",
        actor=client.client_id,
        action="export.kickoff",
        details={"job": str(job.uuid)},
    )
    record_event(
        actor_type="client",
        actor="forged-iss",
        action="token.request",
        outcome="failure",
        reason="bad signature",
    )
    return client, job


def body_rows(page: str) -> str:
    return page.split("<tbody>")[1].split("</tbody>")[0]


def test_filters_and_links(console_client, trail) -> None:
    client, job = trail
    browser = console_client("auditor")
    rows = body_rows(browser.get("/audit/", {"outcome": "failure"}).content.decode())
    assert "forged-iss" in rows and "bad signature" in rows and "export.kickoff" not in rows
    assert "/clients/forged-iss/" not in rows  # an unverified iss is never linked

    rows = body_rows(browser.get("/audit/", {"client": client.client_id}).content.decode())
    assert "client.registered" in rows and "export.kickoff" in rows and "forged" not in rows
    assert f'href="/exports/{job.uuid}/"' in rows
    assert f'href="/clients/{client.client_id}/"' in rows

    rows = body_rows(browser.get("/audit/", {"action": "token.request"}).content.decode())
    assert "forged-iss" in rows and "client.registered" not in rows
    rows = body_rows(browser.get("/audit/", {"actor": "forged"}).content.decode())
    assert "forged-iss" in rows and "export.kickoff" not in rows
    tomorrow = (timezone.now() + timezone.timedelta(days=1)).date().isoformat()
    rows = body_rows(browser.get("/audit/", {"date_from": tomorrow}).content.decode())
    assert "No events match these filters." in rows


def test_csv_export_follows_the_filters_and_is_audited(console_client, trail) -> None:
    response = console_client("auditor").get("/audit/export.csv", {"outcome": "failure"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["actor"], r["action"], r["reason"]) for r in rows] == [
        ("forged-iss", "token.request", "bad signature")
    ]
    event = AuditEvent.objects.get(action="audit.exported")
    assert (event.actor, event.details["filters"]) == ("auditor-user", {"outcome": "failure"})


def test_sign_ins_failed_sign_ins_and_sign_outs_are_audited(client) -> None:
    from accounts.services import create_operator

    _, password = create_operator(username="olivia", role="operator")
    client.post("/accounts/login/", {"login": "olivia", "password": "nope"})
    client.post("/accounts/login/", {"login": "olivia", "password": password})
    client.post("/accounts/logout/")
    events = AuditEvent.objects.filter(action__startswith="operator.log").order_by("pk")
    assert [(e.action, e.actor, e.outcome) for e in events] == [
        ("operator.login", "olivia", "failure"),
        ("operator.login", "olivia", "success"),
        ("operator.logout", "olivia", "success"),
    ]
    assert password not in str([e.details for e in events])


def test_csv_cells_never_start_a_formula(console_client) -> None:
    record_event(
        actor_type="client",
        actor='=HYPERLINK("http://evil.example","x")',
        action="token.request",
        outcome="failure",
        reason="unknown client",
    )
    response = console_client("auditor").get("/audit/export.csv", {"action": "token.request"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0]["actor"] == '\'=HYPERLINK("http://evil.example","x")'


def test_a_refusal_that_only_named_a_registered_client_says_so_and_links_it(
    console_client, rsa_key
) -> None:
    client = register_client(name="Lab", jwks=rsa_key.jwks(), scopes="system/*.read")
    record_event(
        actor_type="unverified",
        actor=client.client_id,
        action="token.request",
        outcome="failure",
        reason="bad_signature",
    )
    page = console_client("auditor").get("/audit/", {"action": "token.request"})
    rows = body_rows(page.content.decode())
    assert "unverified" in rows and "bad_signature" in rows
    assert f'href="/clients/{client.client_id}/"' in rows


def test_rows_name_clients_say_what_happened_and_filter_by_a_listed_client(
    console_client, trail, store
) -> None:
    client, _ = trail
    browser = console_client("auditor")
    page = browser.get("/audit/").content.decode()
    rows = body_rows(page)
    assert f'<span title="client_id {client.client_id}">Lab</span>' in rows  # name, id on hover
    assert "registered client Lab" in rows
    assert "saved Group Cohort 1 (g1), 2 members" in rows
    assert "forged-iss" in rows  # an unknown iss stays as it was sent
    select = page.split('name="client"')[1].split("</select>")[0]
    assert f'<option value="{client.client_id}">Lab</option>' in select


def test_console_actions_on_clients_record_the_operators_address(console_client, rsa_key) -> None:
    browser = console_client("admin")
    response = browser.post(
        "/clients/new/",
        {
            "name": "Lab",
            "syntax": "v1",
            "scope_types": ["Patient"],
            "jwks": json.dumps(rsa_key.jwks()),
        },
        REMOTE_ADDR="192.0.2.7",
    )
    assert response.status_code == 302
    client_id = response["Location"].split("/")[2]
    browser.post(f"/clients/{client_id}/disable/", REMOTE_ADDR="192.0.2.8")
    events = AuditEvent.objects.filter(action__startswith="client.").order_by("pk")
    assert [(e.action, e.ip_address) for e in events] == [
        ("client.registered", "192.0.2.7"),
        ("client.disabled", "192.0.2.8"),
    ]


def test_a_job_timeline_names_its_client(console_client, store, client_a) -> None:
    client_a.kick_off("/fhir/Group/g1/$export")
    job = client_a.backend_client.export_jobs.get()
    page = console_client("auditor").get(f"/exports/{job.uuid}/").content.decode()
    timeline = page.split('<table class="events">')[1].split("</table>")[0]
    cid = client_a.backend_client.client_id
    assert f'<span title="client_id {cid}">{client_a.backend_client.name}</span>' in timeline
