"""What other apps do when an export finishes, so exports need not know them.

An app registers a listener in its AppConfig.ready; it is called with the job's id once
the job's final status is committed (completed or failed). Listeners only queue work:
the worker finishing an export must not wait on, or fail because of, anything else.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from django.db import transaction

Listener = Callable[[int], None]
_listeners: list[Listener] = []


def on_export_finished(listener: Listener) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def export_finished(job_id: int) -> None:
    for listener in _listeners:
        transaction.on_commit(partial(listener, job_id))
