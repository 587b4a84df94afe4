"""The Celery app. Workers start with the usual `celery -A bulkops worker`."""

from __future__ import annotations

import os

from celery import Celery, Task
from celery.signals import setup_logging, task_postrun, task_prerun
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
