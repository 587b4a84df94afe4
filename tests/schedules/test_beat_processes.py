"""Real processes: `celery beat` with django-celery-beat's DatabaseScheduler, as the
Procfile runs it, wakes an incremental schedule every minute and `celery worker` exports.
One run fails (its worker cannot reach the object store it is configured for); the next
run's `_since` is the last completed run's transactionTime, so it carries every change
since, exactly once.

About two minutes: the first run is a catch-up (beat "was down"), the next two wait for
minute boundaries.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.processes import (
    celery_beat_process,
    celery_worker_process,
    free_port,
    manage,
    process_env,
    sqlite_rows,
)

pytestmark = pytest.mark.slow

CREATE = """
from datetime import timedelta
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from accounts.services import create_operator
from schedules.models import ExportSchedule
from schedules.services import ScheduleFields, save_schedule
operator, _ = create_operator(username="ops", role="operator")
schedule = save_schedule(
    schedule=None,
    fields=ScheduleFields(
        name="minutely", client=None, level="system", group_id="", types=["Patient"],
        type_filters=[], elements=[], cron="* * * * *", timezone="Europe/Berlin",
        retention=None, storage="default", incremental=True, notify_webhook_url="",
        notify_webhook_secret="", notify_email="",
    ),
    operator=operator, request=None, base="http://127.0.0.1:8000", now=timezone.now(),
)
# Beat was down for the last ten minutes: it catches up at once when it starts.
before = timezone.now() - timedelta(minutes=10)
ExportSchedule.objects.filter(pk=schedule.pk).update(last_slot=before)
PeriodicTask.objects.filter(pk=schedule.periodic_task_id).update(last_run_at=before)
"""


def patients(path: Path, *ids: str, gender: str) -> Path:
    lines = [json.dumps({"resourceType": "Patient", "id": pid, "gender": gender}) for pid in ids]
    path.write_text("\n".join(lines) + "\n")
    return path


def runs(var: Path) -> list[tuple]:
    return sqlite_rows(
        var,
        "SELECT r.missed, r.since, j.uuid, j.status, j.transaction_time, j.parameters "
        "FROM schedules_schedulerun r LEFT JOIN exports_exportjob j ON j.id = r.job_id "
        "ORDER BY r.id",
    )


def wait_for_run(var: Path, count: int, status: str, seconds: float = 150) -> tuple:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = runs(var)
        if len(found) >= count and found[count - 1][3] == status:
            return found[count - 1]
        time.sleep(0.5)
    raise AssertionError(f"run {count} not {status} in {seconds}s: {runs(var)}")


def exported_ids(var: Path, job_uuid: str) -> set[str]:
    keys = sqlite_rows(
        var,
        "SELECT f.storage_key FROM exports_exportfile f JOIN exports_exportjob j "
        "ON j.id = f.job_id WHERE j.uuid = ? AND f.kind = 'output'",
        (job_uuid,),
    )
    return {
        json.loads(line)["id"]
        for (key,) in keys
        for line in (var / "exports" / key).read_text().splitlines()
    }


def instant(text: str) -> datetime:
    """A datetime as the API writes it, or as SQLite keeps it (UTC without an offset)."""
    parsed = datetime.fromisoformat(text.replace(" ", "T"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def test_since_chains_across_a_failed_run_with_real_beat_and_worker(tmp_path) -> None:
    var = tmp_path / "var"
    env = process_env(var)
    # A worker whose object store does not answer: every export it runs fails.
    no_storage = process_env(
        var,
        BULKOPS_STORAGE="s3",
        BULKOPS_S3_BUCKET="exports",
        BULKOPS_S3_REGION="us-east-1",
        BULKOPS_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
        AWS_ACCESS_KEY_ID="unused",
        AWS_SECRET_ACCESS_KEY="unused",  # noqa: S106 - nothing listens there
    )
    for command in (
        ("migrate", "--no-input"),
        ("load_fhir", str(patients(tmp_path / "p.ndjson", "a", "b", "c", gender="female"))),
        ("shell", "-c", CREATE),
    ):
        result = manage(env, *command)
        assert result.returncode == 0, result.stderr

    with celery_beat_process(env, log=tmp_path / "beat.log"):
        with celery_worker_process(env):
            first = wait_for_run(var, 1, "completed", seconds=60)
        assert first[0] >= 9  # the catch-up counted the times beat was down
        assert json.loads(first[5])["_since"] is None
        assert exported_ids(var, first[2]) == {"a", "b", "c"}

        manage(env, "load_fhir", str(patients(tmp_path / "a.ndjson", "a", gender="male")))
        with celery_worker_process(no_storage):
            wait_for_run(var, 2, "failed", seconds=120)
        manage(env, "load_fhir", str(patients(tmp_path / "b.ndjson", "b", gender="male")))

        with celery_worker_process(env):
            third = wait_for_run(var, 3, "completed")

    assert instant(json.loads(third[5])["_since"]) == instant(first[4])
    assert instant(third[1]) == instant(first[4])
    assert exported_ids(var, third[2]) == {"a", "b"}  # both changes, c not again
