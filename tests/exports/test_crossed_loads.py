"""load_fhir while another transaction writes some of the same resources in the
opposite order: PostgreSQL breaks the deadlock by failing the load, which loads the
file again instead of stopping with a database error."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from tests.row_locks import cross, crossed_genders, crossing_lines

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's row locks"),
]


def test_load_fhir_loads_a_file_again_after_a_deadlock(load_fhir, tmp_path):
    path = tmp_path / "Patient.ndjson"
    path.write_text("".join(json.dumps(line) + "\n" for line in crossing_lines()))

    def load_in_thread():
        try:
            return load_fhir(path)
        finally:
            connection.close()  # the thread's own connection

    with ThreadPoolExecutor(1) as pool:
        loading = cross(lambda: pool.submit(load_in_thread))
    run = loading.result(timeout=60)

    assert not run.failed, run.stderr
    # Created, updated, unchanged, deleted, skipped: each line written once.
    assert re.search(r"^Patient\s+999\s+2\s+0\s+0\s+0$", run.stdout, re.M), run.stdout
    assert crossed_genders() == {"a": "male", "b": "male"}
