"""The launch form's `_typeFilter` lines: the live preview (how each filter parses, what
is refused and why, how many stored resources it matches), the message next to the
field, and the filters on the job page."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from exports.models import ExportJob
from fhirstore.writes import ResourceWrite, write_resources
from tests.console.test_exports import launch_data

pytestmark = pytest.mark.django_db


def lint(browser, client, **fields) -> str:
    """The preview fragment's text as a reader sees it: no tags, single spaces."""
    response = browser.post(
        "/exports/new/lint/", launch_data(client, **fields), headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    marked = response.content.decode().replace('<section id="type-filter-preview">', "[filters]")
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", marked)).split())


def test_preview_parses_each_filter_counts_matches_and_explains_refusals(
    console_client, store, client_a
):
    # The store holds six Observations (two per patient p1, p2, p3), all LOINC 8867-4.
    page = lint(
        console_client("operator"),
        client_a.backend_client,
        level="system",
        type_filters="Observation?code=http://loinc.org|8867-4\n"
        "Observation?subject=p1,p2&status:missing=false\n\n"
        "Observation?_sort=date",
    )
    preview = page.split("[filters]")[1]
    assert "Observation?code=http://loinc.org|8867-4" in preview
    assert "code (token) is http://loinc.org|8867-4" in preview
    assert "6 of the 6 stored Observation resources match." in preview
    assert "subject (reference) is any of p1,p2, and whose status (token) has a value" in preview
    assert "4 of the 6 stored Observation resources match." in preview
    assert (
        "Refused: The _typeFilter 'Observation?_sort=date' cannot be applied: _sort is a "
        "result parameter: it shapes results, selects nothing." in preview
    )


def test_preview_refusal_is_the_sentence_the_api_writes(console_client, store, client_a):
    response = client_a.kick_off(
        data={"_typeFilter": "Condition?onset-date=soon"}, prefer="respond-async, handling=lenient"
    )
    assert response.status_code == 202
    warning = ExportJob.objects.get().warnings[0]
    sentence = warning.removesuffix(" It was ignored (Prefer: handling=lenient).")
    page = lint(
        console_client("operator"),
        client_a.backend_client,
        level="system",
        type_filters="Condition?onset-date=soon",
    )
    assert f"Refused: {sentence}" in page


def test_a_large_type_is_estimated_from_a_sample_and_says_so(console_client, client_a):
    """2,100 Observations alternate between two codes, so every window of consecutive
    rows holds as many of one as of the other: the estimate is exactly half."""
    written = timezone.now() - timedelta(hours=1)
    write_resources(
        [
            ResourceWrite(
                "Observation",
                f"o{n}",
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"code": "even" if n % 2 == 0 else "odd"}]},
                },
            )
            for n in range(2100)
        ],
        now=written,
    )
    page = lint(
        console_client("operator"),
        client_a.backend_client,
        level="system",
        type_filters="Observation?code=even",
    )
    assert (
        "About 1050 of the 2100 stored Observation resources match (an estimate from a "
        "sample of 2000)." in page
    )


def test_launch_with_a_refused_filter_shows_the_reason_next_to_the_field(
    console_client, store, client_a
):
    response = console_client("operator").post(
        "/exports/new/",
        launch_data(
            client_a.backend_client,
            types="Patient",
            type_filters="Observation?status=final\nPatient?gender:sounds-like=f",
        ),
    )
    assert response.status_code == 200
    field = html.unescape(
        response.content.decode().split('id="field-type_filters"')[1].split("</div>")[0]
    )
    assert (
        "The _typeFilter 'Observation?status=final' cannot be applied: _type does not ask for "
        "Observation, so nothing would be filtered." in field
    )
    assert "the modifier :sounds-like is not supported on gender" in field
    assert not ExportJob.objects.exists()


def test_launched_filters_and_until_reach_the_job_and_its_page(console_client, store, client_a):
    browser = console_client("operator")
    response = browser.post(
        "/exports/new/",
        launch_data(
            client_a.backend_client,
            type_filters="Observation?subject=http://testserver/fhir/Patient/p1\r\n"
            "Condition?_id=p2-c",
            until="2099-01-01T00:00:00Z",
        ),
    )
    job = ExportJob.objects.get()
    assert response["Location"] == f"/exports/{job.uuid}/"
    assert job.parameters["_typeFilter"] == ["Observation?subject=Patient/p1", "Condition?_id=p2-c"]
    assert job.parameters["_until"] == "2099-01-01T00:00:00+00:00"
    page = html.unescape(browser.get(f"/exports/{job.uuid}/").content.decode())
    filters = page.split('id="job-type-filters"')[1].split("</ul>")[0]
    assert "Observation?subject=Patient/p1" in filters and "Condition?_id=p2-c" in filters
    assert "2099-01-01T00:00:00+00:00" in page


def test_rerun_keeps_the_filters(console_client, store, client_a):
    browser = console_client("operator")
    browser.post(
        "/exports/new/",
        launch_data(client_a.backend_client, type_filters="Condition?_id=p2-c"),
    )
    first = ExportJob.objects.get()
    browser.post(f"/exports/{first.uuid}/rerun/")
    second = ExportJob.objects.exclude(pk=first.pk).get()
    assert second.parameters["_typeFilter"] == ["Condition?_id=p2-c"]
