"""Tasks travel through a real broker to a real worker."""

from __future__ import annotations

from bulkops.tasks import ping_task
from tests.processes import celery_worker_process, manage, process_env

SEND_PING = "from bulkops.tasks import ping_task; print(ping_task.delay().get(timeout=30))"


def test_in_process_worker_runs_a_task(celery_worker):
    assert ping_task.delay().get(timeout=10) == "pong"


def test_worker_started_like_make_run_consumes_from_the_filesystem_broker(tmp_path):
    env = process_env(tmp_path, CELERY_RESULT_BACKEND=f"file://{tmp_path / 'results'}")
    (tmp_path / "results").mkdir()
    with celery_worker_process(env):
        result = manage(env, "shell", "--no-imports", "-c", SEND_PING, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "pong"
