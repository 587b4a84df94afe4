"""The Celery app. Workers start with the usual `celery -A bulkops worker`."""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery, Task
from celery.exceptions import WorkerShutdown
from celery.signals import (
    beat_init,
    celeryd_init,
    setup_logging,
    task_postrun,
    task_prerun,
    worker_process_init,
    worker_ready,
    worker_shutting_down,
)
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bulkops.settings")

app = Celery("bulkops")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def use_django_logging(**kwargs: object) -> None:
    """Workers log through Django's LOGGING so web and worker lines look alike."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@task_prerun.connect
@task_postrun.connect
def drop_unusable_connections(task: Task, **kwargs: object) -> None:
    """Between tasks, database connections live as Django keeps them between requests:
    reused up to CONN_MAX_AGE, dropped after an error that may have broken them, checked
    before their next use (CONN_HEALTH_CHECKS). A task run in-process (`apply()`) shares
    its caller's connection and leaves it alone."""
    if not task.request.is_eager:
        close_old_connections()


@celeryd_init.connect
@beat_init.connect
def refuse_unshared_settings_at_start(**kwargs: object) -> None:
    """A worker or beat of a multi-host installation missing a shared setting stops
    before it takes a task (bulkops/multihost.py). SystemExit, because Celery logs and
    ignores any Exception a signal receiver raises."""
    from bulkops.multihost import refuse_unshared_settings

    try:
        refuse_unshared_settings()
    except ImproperlyConfigured as error:
        raise SystemExit(f"ImproperlyConfigured: {error}") from None


@worker_shutting_down.connect
def stop_polling_now(exitcode: int = 0, **kwargs: object) -> None:
    """On the filesystem broker (`make run`'s), stop at once instead of after the poll.

    Celery polls that transport in its blocking loop, which looks at the shutdown flag
    only between two-second drains, and drains once more after seeing it: a worker asked
    to stop took 4 s to begin, and honcho kills whatever is still running 5 s after
    Ctrl-C. This runs in the signal handler, in the main process's main thread, so the
    exception ends the drain where it is; the worker then stops as after any warm
    shutdown (tasks are acks_late and idempotent, an unacknowledged message is handed
    out again). Brokers with an event loop (Redis, RabbitMQ) wake up on the signal.
    """
    from django.conf import settings

    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        raise WorkerShutdown(exitcode)


@worker_process_init.connect
def leave_the_process_group(**kwargs: object) -> None:
    """Each pool process takes a process group of its own, so a signal sent to the
    worker's group reaches the worker alone, which stops its pool in order.

    honcho (`make run`) stops a process by signalling its whole group: pool processes
    killed that way could die holding their task queue's lock, and the worker then waited
    for that lock forever, until honcho's SIGKILL 5 s later. Celery already keeps a
    terminal's Ctrl-C from its pool processes (they ignore SIGINT) for the same reason.
    """
    os.setpgid(0, 0)


def worker_ready_file() -> Path:
    """Touched by a worker on the filesystem broker once it is ready."""
    from django.conf import settings

    return settings.VAR_DIR / "run" / "worker-ready"


@worker_ready.connect
def say_ready(**kwargs: object) -> None:
    """On the filesystem broker, leave a mark that a worker is ready: `make run`'s
    first_steps waits for it, so the first steps print after the worker's banner."""
    from django.conf import settings

    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        worker_ready_file().parent.mkdir(parents=True, exist_ok=True)
        worker_ready_file().touch()
