"""Queue a Celery task by the name it is registered under.

Services decide that work must run; a tasks module runs it by calling those services.
Queuing by name (Celery's `send_task`) keeps that import one-way: a tasks module imports
its services, a service never imports a tasks module, and a web process queues work
without loading any task code.
"""

from __future__ import annotations

from typing import Any

from celery import current_app


def enqueue(name: str, **kwargs: Any) -> None:
    current_app.send_task(name, kwargs=kwargs)
