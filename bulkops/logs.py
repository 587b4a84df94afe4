"""Log formatters that carry our context ids (job, client_id, task) on every line.

Who-did-what is an AuditEvent row; logs are for operations, so they carry ids that
make `grep job=<uuid>` work in text mode and a field filter work in JSON mode.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

CONTEXT_KEYS = ("job", "partition", "client_id", "task", "path", "status")


def _context(record: logging.LogRecord) -> dict[str, object]:
    return {key: getattr(record, key) for key in CONTEXT_KEYS if hasattr(record, key)}


def _text_value(value: object) -> str:
    """A context value as one token: quoted and escaped (JSON string syntax) when it has
    spaces, quotes or control characters. A client_id can be a caller's unverified iss,
    and a newline in it must not forge a log line of its own."""
    text = str(value)
    if text and text.isprintable() and not any(c in text for c in ' "='):
        return text
    return json.dumps(text)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
        context = " ".join(f"{key}={_text_value(value)}" for key, value in _context(record).items())
        line = f"{stamp[:-3]}Z {record.levelname} {record.name}: {record.getMessage()}"
        if context:
            line = f"{line} {context}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_context(record),
        }
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class RoutineTaskFilter(logging.Filter):
    """Celery's INFO lines about each run of a periodic task at DEBUG instead.

    The beat schedule (CELERY_BEAT_SCHEDULE) runs housekeeping every minute or five;
    beat's "Sending due task", the worker's "received" and its "succeeded" line for
    each run would bury the lines that matter. Celery has no per-task log level, but it
    passes each such record's task in `extra` (`data["name"]`; beat: the format args).
    Only INFO lines are touched, so failures keep their level, and the tasks log at
    INFO or WARNING themselves when a run changes something.
    """

    def __init__(self) -> None:
        from django.conf import settings

        super().__init__()
        self.tasks = frozenset(entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values())

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or _task_name(record) not in self.tasks:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def _task_name(record: logging.LogRecord) -> object:
    data = getattr(record, "data", None)
    if isinstance(data, dict):  # celery.app.trace, celery.worker.strategy
        return data.get("name")
    if record.name == "celery.beat" and isinstance(record.args, tuple) and len(record.args) == 2:
        return record.args[1]  # "Scheduler: Sending due task %s (%s)": entry name, task
    return None
