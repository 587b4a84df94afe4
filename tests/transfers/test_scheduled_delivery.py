"""A schedule can send each run's export to a remote server's `$bulk-submit`: the run's
completion queues the delivery (exports.finish_hooks)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.services import create_operator
from schedules.models import ExportSchedule
from schedules.services import run_schedule
from tests.accounts.conftest import ensure_role_groups
from tests.transfers.conftest import live_bodies, wait_for
from transfers.models import Delivery

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def test_each_run_is_sent_to_the_schedules_receiver(store, receiver, live_server):
    schedule = ExportSchedule.objects.create(
        name="nightly", level="system", types=["Patient"], cron="0 2 * * *",
        base_url=live_server.url, submit_to=receiver,
    )  # fmt: skip
    ensure_role_groups()  # a transactional test before this one flushed them
    operator, _ = create_operator(username="op", role="operator")

    run = run_schedule(schedule_id=schedule.pk, now=timezone.now(), operator=operator, request=None)

    assert run.refusal == ""
    delivery = wait_for(Delivery.objects.get(), Delivery.Status.DONE, Delivery.Status.FAILED)
    assert delivery.status == Delivery.Status.DONE, delivery.error
    assert delivery.job == run.job and delivery.requested_by == "schedule nightly"
    assert [o["plain"] for o in delivery.outcomes] == [
        f"Information: a note from the remote. The remote says: Loaded 3 Patient resources "
        f"from {delivery.base_url}/fhir/deliveries/{delivery.uuid}/files/"
        f"{run.job.files.get().uuid}.ndjson."
    ]
    assert set(live_bodies("Patient")) == {"Patient/p1", "Patient/p2", "Patient/p3"}


def test_schedule_api_takes_and_shows_the_receiver(receiver, api_as):
    api = api_as("operator")
    body = {"name": "weekly", "level": "system", "cron": "0 3 * * 1", "submit_to": "receiver"}
    created = api.post("/api/v1/schedules/create", body)
    assert created.status_code == 201, created.content
    assert created.json()["submit_to"] == "receiver"

    refused = api.post("/api/v1/schedules/create", {**body, "name": "x", "submit_to": "nowhere"})
    assert refused.status_code == 400 and "submit_to" in refused.json()["errors"]
