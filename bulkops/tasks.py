"""Tasks that belong to no app: the worker liveness probe."""

from __future__ import annotations

from celery import shared_task


@shared_task(ignore_result=False)
def ping_task() -> str:
    """Answer "pong": proves a worker consumes from the configured broker."""
    return "pong"
