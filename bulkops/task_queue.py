"""Queue a Celery task by the name it is registered under.

Services decide that work must run; a tasks module runs it by calling those services.
Queuing by name (Celery's `send_task`) keeps that import one-way: a tasks module imports
its services, a service never imports a tasks module, and a web process queues work
without loading any task code.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)


def enqueue(name: str, **kwargs: Any) -> None:
    current_app.send_task(name, kwargs=kwargs)


def enqueue_or_leave(name: str, *, left: str, **kwargs: Any) -> bool:
    """Queue the task, or, with the broker down, log what is left undone and say so.

    For work that has a way back once the broker returns (the export reaper, the
    notification list on the dashboard): the caller's request must not fail for it."""
    try:
        enqueue(name, **kwargs)
    except OperationalError:
        logger.warning("broker unavailable: %s", left, extra={"task": name, **kwargs})
        return False
    return True
