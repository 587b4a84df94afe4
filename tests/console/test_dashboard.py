"""The dashboard: running jobs polling live, failures, totals, data and client health."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.services import disable_client, register_client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("role", "status"), [("admin", 200), ("operator", 200), ("auditor", 200), (None, 403)]
)
def test_dashboard_is_for_console_roles(console_client, role, status) -> None:
    browser = console_client(role)
    assert browser.get("/").status_code == status
    assert browser.get("/running/").status_code == status


def test_empty_install_says_what_to_do(console_client) -> None:
    page = console_client("operator").get("/").content.decode()
    assert "No export is running." in page
    assert "No data loaded yet" in page
    assert "No failed export in the last 7 days." in page


def test_dashboard_shows_running_failures_totals_data_and_health(
    console_client, store, client_a, rsa_key
) -> None:
    now = timezone.now()
    jobs = client_a.backend_client.export_jobs
    jobs.create(level="group", group_id="g1", request_url="x", transaction_time=now)
    jobs.create(
        level="system",
        request_url="x",
        transaction_time=now,
        status="failed",
        failure_reason="Storage <full>",
        resources_exported=7,
    )
    register_client(name="Writer only", jwks=rsa_key.jwks(), scopes="system/Patient.write")
    gone = register_client(name="Retired", jwks=rsa_key.jwks(), scopes="system/*.read")
    disable_client(client_id=gone.client_id, actor=None)

    page = console_client("auditor").get("/").content.decode()
    running = page.split('id="running-jobs"')[1].split("</section>")[0]
    assert 'hx-trigger="every 2s"' in running and "0% - planning" in running
    assert "Storage &lt;full&gt;" in page
    assert '<div class="value">2</div><div class="label">exports, last 7 days' in page
    assert '<div class="value">7</div><div class="label">resources exported, 7 days' in page
    assert '<td class="type-name">Observation</td><td class="num">6</td>' in page
    assert "1 group" in page
    assert "Writer only" in page and "exports nothing" in page
    assert "Retired" in page and "badge-disabled" in page
    assert page.count('<rect class="bar"') == 14
    # Every day's count shows on hover, a day without exports too, against an axis.
    chart = page.split('<svg class="chart"')[1].split("</svg>")[0]
    today = timezone.localdate().strftime("%a %b %-d")
    assert f"<title>{today}: 2 exports</title>" in chart
    assert chart.count(": 0 exports</title>") == 13
    assert '<text x="22" y="8" text-anchor="end">2</text>' in chart  # the axis' peak


def test_more_types_than_the_dashboard_lists_link_to_the_data_page(console_client, store) -> None:
    from fhirstore.writes import put_resource

    for name in ("Account", "Basic", "Device", "Flag", "Goal", "Media", "Slot"):
        put_resource(
            resource_type=name,
            resource_id="x",
            body={"resourceType": name, "id": "x"},
            now=timezone.now(),
        )
    page = console_client("auditor").get("/").content.decode()
    assert '<a href="/data/">2 more types</a>' in page


def test_running_panel_stops_polling_when_nothing_runs(console_client) -> None:
    fragment = console_client("operator").get("/running/", headers={"HX-Request": "true"})
    text = fragment.content.decode()
    assert text.lstrip().startswith('<section id="running-jobs"')
    assert "every 2s" not in text
