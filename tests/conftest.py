from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery.contrib.testing.worker import TestWorkController, start_worker

from bulkops.celery import app as celery_app


@pytest.fixture(scope="session")
def celery_session_worker() -> Iterator[TestWorkController]:
    """A real Celery worker running our app in this process, on an in-memory broker.

    Tasks enqueued by the code under test (views, services) go through kombu to this
    worker's threads exactly as they would to a separate worker process.
    """
    celery_app.conf.update(
        broker_url="memory://",
        broker_transport_options={},
        result_backend="cache+memory://",
    )
    with start_worker(
        celery_app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=30
    ) as worker:
        yield worker


@pytest.fixture
def celery_worker(celery_session_worker: TestWorkController) -> TestWorkController:
    """Tests that use this must be `django_db(transaction=True)`: the worker's threads
    see only committed rows."""
    return celery_session_worker
