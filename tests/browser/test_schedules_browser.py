"""The Schedules pages in a real browser: an admin defines a weekly incremental export
in Berlin time (a bad cron expression is answered next to its field), runs it now,
pauses it, and finds the run with its counts; both pages fit a phone. Screenshots go to
BULKOPS_SCREENSHOT_DIR like the console journey's."""

from __future__ import annotations

from typing import Any

import pytest

from schedules.models import ExportSchedule
from tests.browser.test_console_browser import (  # noqa: F401 - fixtures
    assert_fits_a_phone,
    chromium,
    log_in,
    page,
    shots,
)
from tests.exports.conftest import store  # noqa: F401 - the linked patients and Group g1


def fill_schedule(tab: Any) -> None:
    tab.goto("/schedules/new/")
    tab.fill("input[name=name]", "partner-weekly")
    tab.select_option("select[name=level]", "group")
    tab.select_option("select[name=group_id]", "g1")
    tab.fill("input[name=types]", "Patient,Observation")
    tab.select_option("select[name=frequency]", "cron")
    tab.fill("input[name=cron]", "30 2 * * monday-ish")
    tab.fill("input[name=timezone]", "Europe/Berlin")
    tab.check("input[name=incremental]")
    tab.fill("input[name=retention_hours]", "72")
    tab.fill("input[name=notify_webhook_url]", "https://hooks.example.org/bulkops/T0/secret")
    tab.fill("input[name=notify_webhook_secret]", "signing-secret")


@pytest.mark.django_db(transaction=True)
def test_schedules_pages(page, shots, store, celery_worker) -> None:  # noqa: F811
    log_in(page)
    fill_schedule(page)
    page.click("#schedule-form button[type=submit]")
    error = page.locator("#field-cron .errorlist")
    assert "day of week field" in error.inner_text()
    assert not ExportSchedule.objects.exists()

    page.select_option("select[name=frequency]", "weekly")
    page.select_option("select[name=weekday]", "1")
    page.fill("input[name=at]", "02:30")
    page.fill("input[name=notify_webhook_secret]", "signing-secret")
    page.click("#schedule-form button[type=submit]")
    page.wait_for_selector("#run-now")
    schedule = ExportSchedule.objects.get()
    assert schedule.cron == "30 2 * * mon"
    assert "Europe/Berlin" in page.locator("#next-run").inner_text()

    page.click("#run-now")
    page.wait_for_url("**/exports/*/")
    page.wait_for_selector(".badge-completed", timeout=30_000)
    page.goto(f"/schedules/{schedule.uuid}/")
    row = page.locator("#runs tbody tr").first
    assert "completed" in row.inner_text() and "manual" in row.inner_text()
    assert "signing-secret" not in page.content() and "/T0/secret" not in page.content()
    page.screenshot(path=shots / "schedule-detail.png", full_page=True)

    page.goto("/schedules/")
    page.screenshot(path=shots / "schedules.png", full_page=True)
    page.goto(f"/schedules/{schedule.uuid}/")
    page.click("#pause")
    page.wait_for_selector("#resume")
    assert page.locator("#next-run").inner_text() == "paused"

    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/schedules/", f"/schedules/{schedule.uuid}/", "/schedules/new/"):
        assert_fits_a_phone(page, path)
