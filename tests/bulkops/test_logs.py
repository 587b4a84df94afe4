"""Log lines carry the job id so an operator can grep one export's story."""

from __future__ import annotations

import json
import logging

from bulkops.logs import JsonFormatter, TextFormatter


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
