"""The systemd units in deploy/systemd run what the Procfile runs (the multi-host test
starts every host with them, tests/multihost)."""

from __future__ import annotations

import shlex

import pytest

from bench.cluster import unit_command
from tests.processes import BIN, ROOT

PROCFILE = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines())


@pytest.mark.parametrize(
    ("unit", "process", "shared"),
    [
        ("bulkops-web", "web", 4),  # gunicorn bulkops.wsgi -c gunicorn.conf.py
        ("bulkops-worker", "worker", 6),  # celery -A bulkops worker --loglevel INFO
        # celery -A bulkops beat --loglevel INFO -S <the database scheduler>
        ("bulkops-beat", "beat", 8),
    ],
)
def test_units_start_the_procfiles_commands(unit, process, shared):
    command = unit_command(unit, {}, "host-a")
    procfile = shlex.split(PROCFILE[process].removeprefix("exec "))
    assert command[0] == str(BIN / procfile[0])
    assert command[1:shared] == procfile[1:shared]


def test_unit_defaults_fill_what_the_host_does_not_set():
    assert unit_command("bulkops-web", {"WEB_BIND": "10.0.0.5:8000"}, "a")[4:8] == [
        "--bind",
        "10.0.0.5:8000",
        "--workers",
        "2",
    ]
    assert unit_command("bulkops-migrate", {}, "a")[1:] == ["manage.py", "migrate", "--no-input"]
