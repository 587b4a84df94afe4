"""Times are stored in UTC and shown in each operator's own time zone (their settings
page; by default the site's TIME_ZONE), and every console page names the zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import AuditEvent
from accounts.services import create_operator
from accounts.time_zones import set_time_zone
from exports.models import ExportJob
from tests.accounts.conftest import ensure_role_groups

pytestmark = pytest.mark.django_db

# 12:00 UTC on 1 July 2024 is 14:00 in Berlin (CEST) and 08:00 in New York (EDT); at
# 02:30 UTC on 2 July it is still 1 July in New York.
NOON_UTC = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)
EARLY_UTC = datetime(2024, 7, 2, 2, 30, tzinfo=UTC)


def admin_in(zone: str, username: str) -> Client:
    ensure_role_groups()
    user, _ = create_operator(username=username, role="admin")
    if zone:
        set_time_zone(user=user, time_zone=zone)
    browser = Client()
    browser.force_login(user)
    return browser


def recorded_at(moment: datetime, action: str = "test.moment") -> AuditEvent:
    event = AuditEvent.objects.create(actor_type="system", actor="system", action=action)
    AuditEvent.objects.filter(pk=event.pk).update(created_at=moment)
    return event


def row_time(page: str, action: str) -> str:
    """The "When" cell of the audit trail row of `action`."""
    row = re.search(rf"<tr>\s*<td>([^<]+)</td>(?:(?!</tr>).)*>{action}<", page, re.S)
    assert row is not None, action
    return row.group(1)


def test_one_instant_is_shown_in_each_operators_zone_and_the_zone_is_named():
    recorded_at(NOON_UTC)
    berlin = admin_in("Europe/Berlin", "berta").get("/audit/").text
    new_york = admin_in("America/New_York", "nora").get("/audit/").text
    assert row_time(berlin, "test.moment") == "2024-07-01 14:00:00"
    assert row_time(new_york, "test.moment") == "2024-07-01 08:00:00"
    assert 'id="time-zone"' in berlin and "times in Europe/Berlin" in berlin
    assert "times in America/New_York" in new_york
    assert AuditEvent.objects.get(action="test.moment").created_at == NOON_UTC  # stored UTC


def test_without_a_choice_an_operator_sees_the_sites_time_zone(settings: Any):
    settings.TIME_ZONE = "Asia/Tokyo"
    recorded_at(NOON_UTC)
    page = admin_in("", "kenji").get("/audit/").text
    assert row_time(page, "test.moment") == "2024-07-01 21:00:00"
    assert "times in Asia/Tokyo" in page


def test_date_filters_take_days_in_the_operators_zone():
    """ "2 July" means 2 July where the operator is: at 02:30 UTC New York is on 1 July."""
    recorded_at(EARLY_UTC, "test.early")
    july_first = "/audit/?date_from=2024-07-01&date_to=2024-07-01"
    listed = 'class="mono">test.early</td>'
    assert listed in admin_in("America/New_York", "nora").get(july_first).text
    assert listed not in admin_in("Europe/Berlin", "berta").get(july_first).text


def test_an_operator_chooses_a_zone_on_their_settings_page(console_client):
    browser = console_client("auditor")
    page = browser.get("/profile/").text
    assert '<option value="" selected>The site&#x27;s default (UTC)</option>' in page
    saved = browser.post("/profile/", {"time_zone": "Pacific/Auckland"}, follow=True)
    assert "Times are now shown in Pacific/Auckland." in saved.text
    assert "times in Pacific/Auckland" in saved.text
    assert '<option value="Pacific/Auckland" selected>' in saved.text
    event = AuditEvent.objects.get(action="operator.time_zone_changed")
    assert (event.actor, event.details["from"], event.details["to"]) == (
        "auditor-user",
        "UTC",
        "Pacific/Auckland",
    )

    refused = browser.post("/profile/", {"time_zone": "<b>Mars/Base</b>"})
    assert refused.status_code == 400
    assert 'id="field-time_zone"' in refused.text and "Select a valid choice." in refused.text
    assert "<b>Mars" not in refused.text and "&lt;b&gt;Mars" in refused.text
    assert "times in Pacific/Auckland" in browser.get("/").text  # unchanged
    assert AuditEvent.objects.filter(action="operator.time_zone_changed").count() == 1


def test_an_exports_transaction_time_is_shown_in_the_operators_zone():
    job = ExportJob.objects.create(level="system", request_url="x", transaction_time=NOON_UTC)
    page = admin_in("Asia/Kolkata", "asha").get(f"/exports/{job.uuid}/").text
    assert "<dd>2024-07-01 17:30:00</dd>" in page  # +05:30
    assert "times in Asia/Kolkata" in page


def test_the_dashboards_days_are_the_operators_days():
    """A zone whose date differs from UTC's right now: an export started now is counted
    on the operator's today, the chart's last bar."""
    now = timezone.now()
    zone = "Etc/GMT+12" if now.hour < 12 else "Etc/GMT-14"  # UTC-12: yesterday; UTC+14: tomorrow
    ExportJob.objects.create(level="system", request_url="x", transaction_time=now)
    page = admin_in(zone, "zoe").get("/").text
    today = timezone.localtime(now, ZoneInfo(zone)).date()
    titles = re.findall(r"<title>([^<]+)</title>", page)
    assert titles[-1] == f"{today:%a %b} {today.day}: 1 export"
