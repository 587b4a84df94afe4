"""Log lines carry the job id so an operator can grep one export's story."""

from __future__ import annotations

import json
import logging

import pytest

from accounts.tasks import prune_used_assertions_task
from bulkops.logs import JsonFormatter, TextFormatter
from bulkops.tasks import ping_task


def record(**extra) -> logging.LogRecord:
    made = logging.LogRecord(
        "exports.partitions", logging.INFO, __file__, 1, "export planned", None, None
    )
    made.__dict__.update(extra)
    return made


def test_text_lines_end_with_greppable_ids():
    line = TextFormatter().format(record(job="4f1c", partition=3))
    assert line.endswith("INFO exports.partitions: export planned job=4f1c partition=3")


def test_json_lines_hold_ids_as_fields():
    payload = json.loads(JsonFormatter().format(record(job="4f1c", client_id="abc")))
    assert payload["message"] == "export planned"
    assert (payload["job"], payload["client_id"], payload["level"]) == ("4f1c", "abc", "INFO")


@pytest.mark.django_db
def test_periodic_task_runs_are_logged_at_debug_and_other_tasks_at_info(caplog):
    """`make run` logs at INFO: the reaper's minutely run must not print three lines."""
    caplog.set_level(logging.INFO, logger="celery.app.trace")
    caplog.set_level(logging.INFO, logger="celery.beat")
    ping_task.apply()
    prune_used_assertions_task.apply()
    due = ("reap-stalled-exports", "exports.tasks.reap_stalled_exports_task")
    logging.getLogger("celery.beat").info("Scheduler: Sending due task %s (%s)", *due)
    assert [(r.levelname, r.getMessage().split("[")[0]) for r in caplog.records] == [
        ("INFO", "Task bulkops.tasks.ping_task")
    ]

    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="celery.app.trace")
    prune_used_assertions_task.apply()
    (line,) = caplog.records
    assert line.levelname == "DEBUG"
    assert "prune_used_assertions_task" in line.getMessage() and "succeeded" in line.getMessage()
