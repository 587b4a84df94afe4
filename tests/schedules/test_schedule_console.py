"""Schedules in the console: define, refuse bad input next to its field, pause, resume,
run now, history; and the audit trail of each."""

from __future__ import annotations

import pytest
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from accounts.models import AuditEvent
from schedules.models import ExportSchedule
from tests.schedules.conftest import schedule_form

pytestmark = pytest.mark.django_db


def test_operator_defines_a_daily_schedule_that_beat_will_wake(console_client, store) -> None:
    browser = console_client("operator")
    response = browser.post("/schedules/new/", schedule_form())
    schedule = ExportSchedule.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/schedules/{schedule.uuid}/"
    assert schedule.cron == "30 2 * * *"
    assert schedule.timezone == "Europe/Berlin"
    task = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    assert task.task == "schedules.tasks.run_schedule_task"
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == (
        "30",
        "2",
        "Europe/Berlin",
    )
    assert task.enabled
    page = browser.get(f"/schedules/{schedule.uuid}/").content.decode()
    local = timezone.localtime(schedule.next_run_at, schedule.parsed_cron.zone)
    assert f"{local:%Y-%m-%d} 02:30 Europe/Berlin" in page
    event = AuditEvent.objects.get(action="schedule.created")
    assert event.actor == "operator-user"
    assert event.details["cron"] == "30 2 * * *"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"frequency": "cron", "cron": "61 2 * * *"}, "cron", "minute field"),
        ({"frequency": "cron", "cron": "* * *"}, "cron", "five fields"),
        ({"timezone": "Mars/Olympus"}, "timezone", "not an IANA time zone"),
        ({"at": ""}, "at", "Give the time of day"),
        ({"notify_webhook_url": "https://hooks.example.org/x"}, "notify_webhook_secret", "secret"),
    ],
)
def test_bad_schedule_input_is_shown_next_to_its_field_and_saves_nothing(
    console_client, store, changes, field, message
) -> None:
    response = console_client("admin").post("/schedules/new/", schedule_form(**changes))
    assert response.status_code == 200
    page = response.content.decode()
    start = page.index(f'id="field-{field}"')
    assert message in page[start : page.index("</div>", start)]
    assert not ExportSchedule.objects.exists()
    assert not PeriodicTask.objects.filter(task="schedules.tasks.run_schedule_task").exists()


def test_a_schedule_that_could_never_start_is_refused_when_saved(console_client, store) -> None:
    response = console_client("admin").post(
        "/schedules/new/", schedule_form(types="Patient,NotAType")
    )
    assert response.status_code == 200
    assert "NotAType" in response.content.decode()
    assert not ExportSchedule.objects.exists()


def test_pause_and_resume_follow_through_to_beat_and_the_audit_trail(console_client, store) -> None:
    browser = console_client("operator")
    browser.post("/schedules/new/", schedule_form())
    schedule = ExportSchedule.objects.get()
    browser.post(f"/schedules/{schedule.uuid}/pause/")
    schedule.refresh_from_db()
    assert schedule.paused and schedule.next_run_at is None
    assert not PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled
    assert "paused" in browser.get("/schedules/").content.decode()
    browser.post(f"/schedules/{schedule.uuid}/resume/")
    schedule.refresh_from_db()
    assert not schedule.paused and schedule.next_run_at > timezone.now()
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled
    actions = list(AuditEvent.objects.values_list("action", flat=True).order_by("pk"))
    assert actions[-2:] == ["schedule.paused", "schedule.resumed"]


def test_delete_asks_first_and_the_confirmed_request_goes_to_the_list(console_client, store):
    """htmx sends the Delete form, so its hx-confirm shows before anything is deleted."""
    browser = console_client("operator")
    browser.post("/schedules/new/", schedule_form())
    schedule = ExportSchedule.objects.get()
    page = browser.get(f"/schedules/{schedule.uuid}/").content.decode()
    form = page.split(f'action="/schedules/{schedule.uuid}/delete/"')[1].split(">")[0]
    assert f'hx-post="/schedules/{schedule.uuid}/delete/"' in form and "hx-confirm=" in form
    response = browser.post(f"/schedules/{schedule.uuid}/delete/", headers={"HX-Request": "true"})
    assert response["HX-Redirect"] == "/schedules/"
    assert not ExportSchedule.objects.exists()


def test_run_now_starts_an_ordinary_export_listed_in_the_history(console_client, store) -> None:
    browser = console_client("operator")
    browser.post("/schedules/new/", schedule_form())
    schedule = ExportSchedule.objects.get()
    response = browser.post(f"/schedules/{schedule.uuid}/run/")
    run = schedule.runs.get()
    assert response["Location"] == f"/exports/{run.job.uuid}/"
    assert run.job.request_url == "http://testserver/fhir/$export?_type=Patient"
    assert run.job.types == ["Patient"]
    kickoff = AuditEvent.objects.get(action="export.kickoff")
    assert kickoff.actor == "operator-user"
    page = browser.get(f"/schedules/{schedule.uuid}/").content.decode()
    assert f"/exports/{run.job.uuid}/" in page
    # A second "run now" while the first is still exporting starts nothing and says so.
    browser.post(f"/schedules/{schedule.uuid}/run/")
    refused = schedule.runs.order_by("-pk").first()
    assert refused.job is None
    assert refused.refusal == "The previous run is still exporting."


def test_auditor_reads_schedules_but_has_no_actions(console_client, store) -> None:
    console_client("admin").post("/schedules/new/", schedule_form())
    schedule = ExportSchedule.objects.get()
    auditor = console_client("auditor")
    page = auditor.get(f"/schedules/{schedule.uuid}/").content.decode()
    assert "nightly" in page and 'id="run-now"' not in page
    for action in ("run", "pause", "resume", "delete", "edit"):
        assert auditor.post(f"/schedules/{schedule.uuid}/{action}/").status_code == 403
    assert schedule.runs.count() == 0


def test_webhook_secret_is_kept_encrypted_and_never_shown(console_client, store) -> None:
    browser = console_client("admin")
    url = "https://hooks.example.org/services/T000/B000/tokenpart"
    browser.post(
        "/schedules/new/",
        schedule_form(notify_webhook_url=url, notify_webhook_secret="s3cret-signing-key"),
    )
    schedule = ExportSchedule.objects.get()
    assert "s3cret-signing-key" not in schedule.notify_webhook_secret
    for page in (f"/schedules/{schedule.uuid}/", f"/schedules/{schedule.uuid}/edit/", "/audit/"):
        body = browser.get(page).content.decode()
        assert "s3cret-signing-key" not in body, page
        assert "tokenpart" not in body or page.endswith("/edit/"), page
    event = AuditEvent.objects.get(action="schedule.created")
    assert event.details["webhook"] == "https://hooks.example.org"
    assert "s3cret" not in str(event.details) and "tokenpart" not in str(event.details)
    # Saving the form again without typing the secret keeps it.
    browser.post(
        f"/schedules/{schedule.uuid}/edit/", schedule_form(notify_webhook_url=url, at="03:00")
    )
    schedule.refresh_from_db()
    assert schedule.cron == "0 3 * * *" and schedule.notify_webhook_secret


def test_changing_and_deleting_schedules_leaves_no_unused_crontab_rows(console_client, store):
    browser = console_client("operator")
    browser.post("/schedules/new/", schedule_form())
    browser.post("/schedules/new/", schedule_form(name="twin"))  # the same time: one row
    schedule = ExportSchedule.objects.get(name="nightly")
    for at in ("03:15", "04:45"):
        response = browser.post(f"/schedules/{schedule.uuid}/edit/", schedule_form(at=at))
        assert response.status_code == 302
    assert sorted(CrontabSchedule.objects.values_list("minute", "hour")) == [
        ("30", "2"),
        ("45", "4"),
    ]
    browser.post(f"/schedules/{schedule.uuid}/delete/")
    assert list(CrontabSchedule.objects.values_list("minute", "hour")) == [("30", "2")]
    browser.post(f"/schedules/{ExportSchedule.objects.get().uuid}/delete/")
    assert not CrontabSchedule.objects.exists()
