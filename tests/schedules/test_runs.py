"""Runs: `_since` chaining across failed and cancelled runs, one run per fire time,
catch-up after downtime (one run, the others counted as missed)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from accounts.models import AuditEvent
from exports.models import ExportJob
from exports.partitions import fail_export
from exports.services import delete_export
from exports.storage import get_storage
from fhirstore.writes import put_resource
from schedules.models import ExportSchedule, Notification
from schedules.services import run_schedule
from tests.schedules.conftest import schedule_form, wait_finished


def exported_ids(job: ExportJob) -> set[str]:
    ids = set()
    for file in job.files.filter(kind="output"):
        with get_storage().open_reader(file.storage_key) as handle:
            ids |= {json.loads(line)["id"] for line in handle.read().splitlines()}
    return ids


def touch_patient(pid: str) -> None:
    put_resource(
        resource_type="Patient",
        resource_id=pid,
        body={"resourceType": "Patient", "id": pid, "gender": "other"},
        now=timezone.now(),
    )


@pytest.mark.django_db(transaction=True)
def test_incremental_runs_chain_since_past_failed_and_cancelled_runs(
    console_client, store, celery_worker
) -> None:
    browser = console_client("operator")
    browser.post("/schedules/new/", schedule_form())
    schedule = ExportSchedule.objects.get()

    def run_now(finish=None) -> ExportJob:
        # The export is queued on commit: what `finish` does happens before any worker
        # sees it, as a run that failed or was cancelled at once.
        with transaction.atomic():
            response = browser.post(f"/schedules/{schedule.uuid}/run/")
            assert response.status_code == 302
            job = schedule.runs.order_by("-pk").first().job
            if finish:
                finish(job)
        return wait_finished(job)

    first = run_now()
    assert first.status == "completed" and "_since" not in first.request_url
    assert exported_ids(first) == {"p1", "p2", "p3"}

    touch_patient("p1")
    failed = run_now(lambda job: fail_export(job.pk, "The storage was unavailable."))
    assert failed.status == "failed"
    touch_patient("p2")
    cancelled = run_now(
        lambda job: delete_export(
            job=job, actor_type="operator", actor="x", now=timezone.now(), request=None
        )
    )
    assert cancelled.status == "cancelled"

    last = run_now()
    assert last.status == "completed"
    assert last.parameters["_since"] == first.transaction_time.isoformat()
    assert exported_ids(last) == {"p1", "p2"}  # nothing missed, p3 not again
    runs = list(schedule.runs.order_by("pk").values_list("since", flat=True))
    assert runs == [None, first.transaction_time, first.transaction_time, first.transaction_time]

    after = run_now()
    assert after.parameters["_since"] == last.transaction_time.isoformat()
    assert exported_ids(after) == set()


@pytest.mark.django_db
def test_beat_runs_each_fire_time_once_and_catches_up_once_after_downtime(
    console_client, store, django_capture_on_commit_callbacks
) -> None:
    console_client("operator").post(
        "/schedules/new/", schedule_form(frequency="cron", cron="0 * * * *", timezone="UTC")
    )
    schedule = ExportSchedule.objects.get()
    # Beat (or every worker) was down from 4 hours before the last full hour until ten
    # minutes past it (a past instant, so the export's transactionTime is not ahead).
    now = timezone.now().replace(minute=10, second=0, microsecond=0)
    if now > timezone.now():
        now -= timedelta(hours=1)
    top_of_hour = now.replace(minute=0)
    ExportSchedule.objects.filter(pk=schedule.pk).update(last_slot=top_of_hour - timedelta(hours=4))

    run = run_schedule(schedule_id=schedule.pk, now=now)
    assert run is not None and run.job is not None
    assert run.slot == top_of_hour
    assert run.missed == 3
    assert run_schedule(schedule_id=schedule.pk, now=now + timedelta(seconds=5)) is None
    assert schedule.runs.count() == 1
    schedule.refresh_from_db()
    assert schedule.next_run_at == top_of_hour + timedelta(hours=1)
    event = AuditEvent.objects.get(action="schedule.run")
    assert event.actor == "schedule nightly" and event.details["missed"] == 3


@pytest.mark.django_db
def test_a_paused_schedule_is_not_run_by_beat(console_client, store) -> None:
    browser = console_client("operator")
    browser.post("/schedules/new/", schedule_form(frequency="cron", cron="* * * * *"))
    schedule = ExportSchedule.objects.get()
    browser.post(f"/schedules/{schedule.uuid}/pause/")
    later = timezone.now() + timedelta(minutes=5)
    assert run_schedule(schedule_id=schedule.pk, now=later) is None
    assert not schedule.runs.exists()


@pytest.mark.django_db
def test_a_run_that_starts_nothing_is_a_missed_time(console_client, store, settings) -> None:
    settings.BULKOPS_NOTIFY_WEBHOOK_URL = "https://hooks.example.org/bulkops"
    settings.BULKOPS_NOTIFY_WEBHOOK_SECRET = "k"
    browser = console_client("operator")
    browser.post("/schedules/new/", schedule_form(frequency="cron", cron="* * * * *"))
    schedule = ExportSchedule.objects.get()
    browser.post(f"/schedules/{schedule.uuid}/run/")  # still exporting: no worker here
    ExportSchedule.objects.filter(pk=schedule.pk).update(
        last_slot=timezone.now() - timedelta(minutes=1)
    )
    run = run_schedule(schedule_id=schedule.pk, now=timezone.now() + timedelta(minutes=1))
    assert run.job is None and run.refusal == "The previous run is still exporting."
    note = Notification.objects.get(event="schedule.missed")
    assert note.payload["reason"] == "The previous run is still exporting."
    assert note.destination == "https://hooks.example.org"
