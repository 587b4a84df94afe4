"""A web process imports its views and connects to the broker as it starts, not on its
first request; with the broker down it starts all the same."""

from __future__ import annotations

import subprocess
import sys

from tests.processes import free_port, process_env, run_command

# What a gunicorn worker runs before accepting connections (gunicorn.conf.py), then
# which of the modules a first request would have imported are already loaded.
PROBE = """
import django, sys
django.setup()
import bulkops.celery
from bulkops.warm_start import warm_web_process
warm_web_process()
print(sorted(m for m in ("console.dashboard_views", "exports.export_views", "accounts.token_views")
             if m in sys.modules))
"""


def run_probe(env: dict[str, str]) -> subprocess.CompletedProcess:
    return run_command(env, sys.executable, "-c", PROBE)


def test_a_web_process_imports_its_views_before_the_first_request(tmp_path):
    result = run_probe(process_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == str(
        ["accounts.token_views", "console.dashboard_views", "exports.export_views"]
    )
    assert "broker not reached" not in result.stdout


def test_a_web_process_starts_with_the_broker_down(tmp_path):
    env = process_env(tmp_path, CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    result = run_probe(env)
    assert result.returncode == 0, result.stderr
    assert "broker not reached at start: OperationalError" in result.stdout
