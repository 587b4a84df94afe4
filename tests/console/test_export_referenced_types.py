"""The launch preview and the job page say which referenced types an export adds."""

from __future__ import annotations

import html
import re

import pytest

from exports.models import ExportJob
from tests.console.test_exports import launch_data
from tests.exports.conftest import wait_for_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def test_console_preview_and_job_page_name_the_added_types(console_client, store, client_a):
    browser = console_client("operator")
    preview = browser.post("/exports/new/lint/", launch_data(client_a.backend_client))
    text = html.unescape(preview.content.decode())
    assert "Referenced types added:" in text
    assert "Device, Location, Medication, Organization, Practitioner, PractitionerRole" in text

    browser.post(
        "/exports/new/", launch_data(client_a.backend_client, types="Observation,Location")
    )
    job = ExportJob.objects.get()
    wait_for_job(str(job.uuid))
    page = html.unescape(browser.get(f"/exports/{job.uuid}/").content.decode())
    assert re.search(r'id="job-referenced-types"><span class="mono">Location</span>', page)
