"""load_fhir while another transaction writes some of the same resources in the
opposite order: PostgreSQL breaks the deadlock by failing the load, which loads the
file again instead of stopping with a database error."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.utils import timezone

from fhirstore.models import Resource
from fhirstore.writes import BATCH_SIZE, put_resource
from tests.row_locks import lock_resource, other_writer, wait_until_blocked_by

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's row locks"),
]


def patient(pid: str, gender: str) -> dict:
    return {"resourceType": "Patient", "id": pid, "gender": gender}


def test_load_fhir_loads_a_file_again_after_a_deadlock(load_fhir, tmp_path):
    now = timezone.now()
    for pid in ("a", "b"):
        put_resource(resource_type="Patient", resource_id=pid, body=patient(pid, "female"), now=now)
    # b is in the file's first batch, a in its second: the load holds b when it reaches a.
    lines = [patient("b", "male")]
    lines += [patient(f"p{n}", "other") for n in range(BATCH_SIZE - 1)]
    lines += [patient("a", "male")]
    path = tmp_path / "Patient.ndjson"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))

    def load_in_thread():
        try:
            return load_fhir(path)
        finally:
            connection.close()  # the thread's own connection

    with ThreadPoolExecutor(1) as pool, other_writer() as other:
        lock_resource(other, "Patient", "a")
        loading = pool.submit(load_in_thread)
        wait_until_blocked_by(other)
        lock_resource(other, "Patient", "b")  # a deadlock, which the load breaks by failing
    run = loading.result(timeout=60)

    assert not run.failed, run.stderr
    # Created, updated, unchanged, deleted, skipped: each line written once.
    assert re.search(r"^Patient\s+999\s+2\s+0\s+0\s+0$", run.stdout, re.M), run.stdout
    for pid in ("a", "b"):
        body = Resource.objects.get(resource_type="Patient", resource_id=pid).body
        assert json.loads(body)["gender"] == "male"
