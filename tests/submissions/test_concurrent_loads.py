"""A submitted file loads while another transaction writes some of the same resources in
the opposite order: PostgreSQL breaks the deadlock by failing one of the two, and the
load it picks is run again instead of reporting the file failed."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.utils import timezone

from fhirstore.models import Resource
from fhirstore.writes import BATCH_SIZE, put_resource
from submissions.models import SubmittedFile
from tests.row_locks import lock_resource, other_writer, wait_until_blocked_by
from tests.submissions.conftest import final_status, outcomes, submit

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("celery_worker"),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's row locks"),
]


def patient(pid: str, gender: str) -> dict:
    return {"resourceType": "Patient", "id": pid, "gender": gender}


def test_a_load_picked_to_break_a_deadlock_is_run_again(provider, submitter) -> None:
    now = timezone.now()
    for pid in ("a", "b"):
        put_resource(resource_type="Patient", resource_id=pid, body=patient(pid, "female"), now=now)
    # b is in the file's first batch, a in its second: the load holds b when it reaches a.
    fillers = [patient(f"p{n}", "other") for n in range(BATCH_SIZE - 1)]
    provider.ndjson("/Patient.ndjson", [patient("b", "male"), *fillers, patient("a", "male")])
    url = provider.manifest("/m.json", [("Patient", "/Patient.ndjson")])

    with other_writer() as other:
        lock_resource(other, "Patient", "a")
        submit(submitter, "crossed", manifest_url=url, status="completed")
        wait_until_blocked_by(other)
        # Waits for the load's hold on b: a deadlock, which the load, waiting longer,
        # finds first and breaks by failing.
        lock_resource(other, "Patient", "b")

    manifest = final_status(submitter, "crossed")
    (message,) = outcomes(submitter, manifest).values()
    assert f"Loaded {BATCH_SIZE + 1} Patient resources" in message
    for pid in ("a", "b"):
        body = Resource.objects.get(resource_type="Patient", resource_id=pid).body
        assert json.loads(body)["gender"] == "male"
    # What a purge would delete: the fillers, listed once although the load ran twice.
    file = SubmittedFile.objects.get(manifest__submission__submission_id="crossed")
    assert sorted(file.loaded_keys) == sorted(f"Patient/{p['id']}" for p in fillers)
