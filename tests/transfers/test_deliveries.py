"""bulkops as a Bulk Submit Data Provider: a finished export is sent to a receiver's
`$bulk-submit` (this bulkops on a live server), which fetches our manifest and files over
HTTP with the credential we gave it, loads them, and reports per file (spec digest §3)."""

from __future__ import annotations

import json

import httpx
import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from exports.models import ExportJob
from fhirstore.writes import ResourceWrite, write_resources
from submissions.models import SubmittedManifest
from tests.transfers.conftest import exported_job, live_bodies, wait_for, wait_until
from transfers.models import Delivery
from transfers.services import close, deliver

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

TYPES = ("Patient", "Observation")


def forget(keys: list[str]) -> None:
    """Delete resources from the store, so that only the receiver's load brings them back."""
    writes = (ResourceWrite(*key.split("/", 1), None) for key in keys)
    write_resources(writes, now=timezone.now())


def test_round_trip_gives_back_identical_resources(store, client_a, receiver, live_server):
    job = exported_job(client_a)
    before = live_bodies(*TYPES)
    forget(list(before))
    assert live_bodies(*TYPES) == {}

    delivery = deliver(job, receiver, base_url=live_server.url, actor="op", request=None)
    delivery = wait_for(delivery, Delivery.Status.DONE, Delivery.Status.FAILED)

    assert delivery.status == Delivery.Status.DONE, delivery.error
    assert live_bodies(*TYPES) == before
    # One outcome per file, each saying what loaded; the credential is withdrawn.
    assert len(delivery.outcomes) == job.files.filter(kind="output").count()
    assert all(o["severity"] == "information" for o in delivery.outcomes)
    assert any("Loaded 3 Patient resources" in o["plain"] for o in delivery.outcomes)
    assert delivery.secret_hash == ""
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    for action in ("delivery.requested", "delivery.sent", "delivery.status_sent"):
        assert action in actions
    assert "delivery.finished" in actions and "delivery.served" in actions


def test_an_export_in_a_named_s3_storage_is_delivered(
    store, client_a, receiver, live_server, archive, api_as
):
    """The receiver fetches the files from bulkops, which reads them from the storage the
    job wrote them to: here the "archive" bucket, not the default disk."""
    launched = api_as("operator").post(
        "/api/v1/exports/launch",
        {
            "client_id": client_a.backend_client.client_id,
            "level": "system",
            "types": list(TYPES),
            "storage": "archive",
        },
    )
    assert launched.status_code == 201, launched.content
    job = ExportJob.objects.get(uuid=launched.json()["uuid"])
    wait_until(lambda: ExportJob.objects.get(pk=job.pk).status == ExportJob.Status.COMPLETED)
    job.refresh_from_db()
    outputs = job.files.filter(kind="output")
    assert outputs.count() == len(TYPES)
    stored = archive.keys(f"{job.uuid}/")
    assert all(file.storage_key in stored for file in outputs)
    before = live_bodies(*TYPES)
    forget(list(before))

    delivery = deliver(job, receiver, base_url=live_server.url, actor="op", request=None)
    delivery = wait_for(delivery, Delivery.Status.DONE, Delivery.Status.FAILED)

    assert delivery.status == Delivery.Status.DONE, delivery.error
    assert live_bodies(*TYPES) == before
    assert len(delivery.outcomes) == 2


def test_a_delivery_asked_for_as_its_export_finishes_is_sent(
    store, client_a, receiver, live_server
):
    """The job was read (by a console page, say) while it ran, and has finished by the
    time its delivery is saved: the delivery is sent, not left waiting for a finish that
    has already happened."""
    kickoff = client_a.kick_off("/fhir/$export?_type=Patient,Observation")
    read_while_running = ExportJob.objects.get(uuid=kickoff["Content-Location"].rsplit("/", 1)[1])
    client_a.finished_manifest(kickoff)
    assert not read_while_running.is_finished
    before = live_bodies(*TYPES)
    forget(list(before))

    delivery = deliver(
        read_while_running, receiver, base_url=live_server.url, actor="op", request=None
    )
    delivery = wait_for(delivery, Delivery.Status.DONE, Delivery.Status.FAILED, timeout=30)

    assert delivery.status == Delivery.Status.DONE, delivery.error
    assert live_bodies(*TYPES) == before


def test_stop_makes_the_receiver_purge(store, client_a, receiver, live_server):
    job = exported_job(client_a)
    before = live_bodies(*TYPES)
    forget(list(before))
    delivery = deliver(
        job, receiver, base_url=live_server.url, actor="op", request=None, hold_open=True
    )
    wait_for(delivery, Delivery.Status.OPEN)
    wait_until(lambda: live_bodies(*TYPES) == before)

    close(delivery, "stopped", actor="op", request=None)
    delivery = wait_for(delivery, Delivery.Status.STOPPED, Delivery.Status.FAILED)

    assert delivery.status == Delivery.Status.STOPPED, delivery.error
    assert live_bodies(*TYPES) == {}
    assert delivery.submission_status == "stopped"
    assert "delivery.stop_requested" in AuditEvent.objects.values_list("action", flat=True)


def test_unreachable_receiver_fails_with_a_clear_error(store, client_a, receiver, live_server):
    job = exported_job(client_a)
    receiver.base_url = "http://127.0.0.1:9/fhir"  # nothing listens on the discard port
    receiver.token_url = "http://127.0.0.1:9/auth/token"
    receiver.save()

    delivery = deliver(job, receiver, base_url=live_server.url, actor="op", request=None)
    delivery = wait_for(delivery, Delivery.Status.FAILED, Delivery.Status.DONE)

    assert delivery.status == Delivery.Status.FAILED
    assert delivery.error == (
        "Getting a receiver token failed: could not connect to 127.0.0.1 port 9: connection refused"
    )
    failed = AuditEvent.objects.get(action="delivery.failed")
    assert failed.outcome == AuditEvent.Outcome.FAILURE


def test_files_are_served_only_with_the_delivery_credential(store, client_a, receiver, live_server):
    job = exported_job(client_a)
    delivery = deliver(
        job, receiver, base_url=live_server.url, actor="op", request=None, hold_open=True
    )
    wait_for(delivery, Delivery.Status.OPEN)
    url = f"{live_server.url}/fhir/deliveries/{delivery.uuid}/manifest.json"

    for headers in ({}, {"Authorization": "Bearer guessed"}, {"Authorization": "guessed"}):
        refused = httpx.get(url, headers=headers)
        assert refused.status_code == 401
        assert refused.json()["resourceType"] == "OperationOutcome"
    # The receiver's own copy of the header is the only one that works.

    (header,) = SubmittedManifest.objects.get(url=url).file_headers
    manifest = httpx.get(url, headers=dict([header]))
    assert manifest.status_code == 200
    file_url = manifest.json()["output"][0]["url"]
    assert httpx.get(file_url).status_code == 401
    assert httpx.get(file_url, headers=dict([header])).status_code == 200

    close(delivery, "stopped", actor="op", request=None)
    wait_for(delivery, Delivery.Status.STOPPED)
    assert httpx.get(url, headers=dict([header])).status_code == 401
    assert header[1] not in json.dumps(list(AuditEvent.objects.values("details", "reason")))
