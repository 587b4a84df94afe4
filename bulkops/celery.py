"""The Celery app. Workers start with the usual `celery -A bulkops worker`."""

from __future__ import annotations

import os

from celery import Celery, Task
from celery.signals import beat_init, celeryd_init, setup_logging, task_postrun, task_prerun
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
