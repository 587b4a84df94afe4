"""The Celery app. Workers start with the usual `celery -A bulkops worker`."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import setup_logging

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
