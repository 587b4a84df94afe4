"""What a web process would otherwise do on its first requests, done as it starts.

A gunicorn worker imports the URLconf (every app's views: about 0.25 s) on its first
request, and opens its broker connection and declares the task queue (0.06-0.08 s with
Redis) on the first request that queues work: the first kick-off a fresh worker served
took 0.3 s instead of 0.01 s, and with two workers either could be the fresh one.
gunicorn.conf.py runs `warm_web_process` in each worker before it accepts connections.
"""

from __future__ import annotations

import logging

from celery import current_app
from django.urls import get_resolver
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)


def warm_web_process() -> None:
    """Import the URLconf and connect to the broker. A broker that cannot be reached
    is logged and left to the first request that queues work, as before: the web
    process starts all the same (bulkops.unavailable answers while it is down)."""
    get_resolver().reverse_dict  # noqa: B018 - populating the resolver imports every view
    try:
        with current_app.producer_or_acquire() as producer:
            producer.connection.ensure_connection(max_retries=0)
            producer.maybe_declare(current_app.amqp.queues[current_app.conf.task_default_queue])
    except (OperationalError, OSError) as error:
        logger.warning("broker not reached at start: %s", type(error).__name__)
