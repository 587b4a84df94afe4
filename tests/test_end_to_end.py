"""The whole product as `make run` starts it: gunicorn, a Celery worker with two processes,
the demo client, and the reference client exporting over HTTP. Patient-level and Group
exports, on the embedded filesystem broker and on Redis when CI provides one
(BULKOPS_TEST_REDIS_URL). With 16 patients and partitions of 2,000 rows, every type is a
partition of its own and the Observations' holds more than one page (1,000) of member
ids, so both worker processes write while one of them reads page after page, as in a
large export: on SQLite they share one database file and its locks."""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.processes import celery_worker_process, manage, process_env, web_server

BROKERS = [pytest.param("filesystem://localhost/", id="filesystem")]
if os.environ.get("BULKOPS_TEST_REDIS_URL"):
    BROKERS.append(pytest.param(os.environ["BULKOPS_TEST_REDIS_URL"], id="redis"))


@pytest.mark.parametrize("level", ["patient", "group"])
@pytest.mark.parametrize("broker", BROKERS)
def test_demo_client_exports_the_seeded_data_end_to_end(tmp_path, broker, level):
    env = process_env(tmp_path / "var", CELERY_BROKER_URL=broker, BULKOPS_PARTITION_SIZE="2000")
    outputs = {}
    for command in (
        ["migrate", "--no-input"],
        ["generate_fhir", "--patients", "16", "--seed", "7"],
        ["seed_demo", "--url", "http://127.0.0.1"],
    ):
        result = manage(env, *command)
        assert result.returncode == 0, result.stderr
        outputs[command[0]] = result.stdout
    client_id = re.search(r"--client-id (\S+)", outputs["seed_demo"]).group(1)
    group_id = re.search(r"Group/(\S+)", outputs["generate_fhir"]).group(1)
    level_args = ["--patient-level"] if level == "patient" else ["--group", group_id]
    with celery_worker_process(env, concurrency=2), web_server(env) as base:
        export = manage(
            env,
            "bulk_export",
            "--base-url",
            f"{base}/fhir",
            "--client-id",
            client_id,
            "--key",
            str(tmp_path / "var" / "demo-client-key.jwks"),
            *level_args,
            "--out",
            str(tmp_path / "out"),
            timeout=120,
        )
    assert export.returncode == 0, export.stderr
    table = dict(
        (line.split()[0], int(line.split()[2]))
        for line in export.stdout.splitlines()
        if re.match(r"^\w+\s+\d+\s+\d+$", line)
    )
    assert table["Patient"] == 16
    assert table["total"] == sum(v for k, v in table.items() if k != "total")
    patients = (tmp_path / "out").glob("output-*-Patient.ndjson")
    ids = {json.loads(line)["id"] for path in patients for line in path.read_text().splitlines()}
    assert len(ids) == 16
