"""A submitted file loads while another transaction writes some of the same resources in
the opposite order: PostgreSQL breaks the deadlock by failing one of the two, and the
load it picks is run again instead of reporting the file failed."""

from __future__ import annotations

import pytest
from django.db import connection

from submissions.models import SubmittedFile
from tests.row_locks import cross, crossed_genders, crossing_lines
from tests.submissions.conftest import final_status, outcomes, submit

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("celery_worker"),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's row locks"),
]


def test_a_load_picked_to_break_a_deadlock_is_run_again(provider, submitter) -> None:
    lines = crossing_lines()
    provider.ndjson("/Patient.ndjson", lines)
    url = provider.manifest("/m.json", [("Patient", "/Patient.ndjson")])

    cross(lambda: submit(submitter, "crossed", manifest_url=url, status="completed"))

    manifest = final_status(submitter, "crossed")
    (message,) = outcomes(submitter, manifest).values()
    assert f"Loaded {len(lines)} Patient resources" in message
    assert crossed_genders() == {"a": "male", "b": "male"}
    # What a purge would delete: the new Patients, listed once although the load ran twice.
    file = SubmittedFile.objects.get(manifest__submission__submission_id="crossed")
    assert sorted(file.loaded_keys) == sorted(f"Patient/{line['id']}" for line in lines[1:-1])
