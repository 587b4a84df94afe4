"""Schedule tests reuse the operator and export casts, and save schedules as the console
does."""

from __future__ import annotations

import time
from typing import Any

import pytest

from exports.models import ExportJob
from tests.accounts.conftest import console_client  # noqa: F401
from tests.exports.conftest import (  # noqa: F401
    client_a,
    jwk_a,
    make_fhir_client,
    store,
)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def schedule_form(**overrides: Any) -> dict[str, Any]:
    """The console's schedule form as an operator fills it in."""
    return {
        "name": "nightly",
        "client": "",
        "level": "system",
        "group_id": "",
        "types": "Patient",
        "elements": "",
        "type_filters": "",
        "frequency": "daily",
        "at": "02:30",
        "weekday": "1",
        "cron": "",
        "timezone": "Europe/Berlin",
        "retention_hours": "",
        "incremental": "on",
        "notify_webhook_url": "",
        "notify_webhook_secret": "",
        "notify_email": "",
        **overrides,
    }


def wait_finished(job: ExportJob, seconds: float = 30) -> ExportJob:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_finished:
            return job
        time.sleep(0.1)
    raise AssertionError(f"export {job.uuid} still {job.status} after {seconds}s")
