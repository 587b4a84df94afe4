"""The console's NDJSON browser as an operator uses it: searching the whole file (text,
resource id, element=value) with line numbers, counts and "keep searching" when one
request's byte or time budget runs out, jumping to a line, paging back as well as on,
the readable summary column and the CSV of the lines shown, on local and S3 storage.
Every request is a read of patient data and leaves an audit line."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from typing import Any

import pytest
from django.test import Client

from accounts.models import AuditEvent
from exports.models import ExportFile
from exports.preview import MAX_LINE_BYTES
from exports.storage import get_storage
from tests.exports.files import finished_job, write_file

pytestmark = pytest.mark.django_db

COUNT = 300


def patient(n: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"p{n}",
        "meta": {"lastUpdated": "2026-01-02T03:04:05Z"},
        "name": [{"given": [f"Ada{n}"], "family": "Lovelace"}],
        "gender": "female" if n % 50 == 7 else "male",
        "birthDate": f"19{n % 100:02d}-01-01",
    }


def ndjson(resources: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in resources]


def put_file(resource_type: str, lines: list[bytes], rsa_key: Any) -> ExportFile:
    return write_file(finished_job(rsa_key), ExportFile.Kind.OUTPUT, resource_type, lines)


@pytest.fixture
def local(settings: Any, tmp_path: Any) -> None:
    settings.BULKOPS_STORAGE = "local"
    settings.BULKOPS_LOCAL_STORAGE_DIR = tmp_path


@pytest.fixture
def patients(local: None, rsa_key: Any) -> ExportFile:
    """300 Patients; p7, p57, p107, p157, p207 and p257 are female."""
    return put_file("Patient", ndjson([patient(n) for n in range(1, COUNT + 1)]), rsa_key)


def line_numbers(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="line-(\d+)"', page)]


def follow(page: str, label: str) -> str:
    """The query string of the pager link labelled `label`."""
    match = re.search(r'href="\?([^"]*)"[^>]*>' + re.escape(label), page)
    assert match, f"no {label!r} link"
    return html.unescape(match.group(1))


def test_search_finds_matches_anywhere_in_the_file_with_line_numbers(console_client, patients):
    browser = console_client("auditor")
    page = browser.get(f"/files/{patients.uuid}/", {"q": "gender=female"}).content.decode()
    assert line_numbers(page) == [7, 57, 107, 157, 207, 257]
    assert "6 matches in the whole file" in page
    assert "gender = “female”" in page
    # Each match opens the file at its line, and points at its neighbours.
    assert 'href="#line-57" title="Next match"' in page
    assert 'href="#line-7" title="Previous match"' in page
    opened = follow(page, "57")
    shown = browser.get(f"/files/{patients.uuid}/?{opened}").content.decode()
    assert line_numbers(shown)[:2] == [57, 58] and "Lines 57–106 of 300" in shown

    text = browser.get(f"/files/{patients.uuid}/", {"q": "ADA250"}).content.decode()
    assert line_numbers(text) == [250]  # case-insensitive text anywhere in the line
    by_id = browser.get(f"/files/{patients.uuid}/", {"q": "Patient/p3"}).content.decode()
    assert line_numbers(by_id) == [3]  # that resource, not p30 or p300
    assert line_numbers(
        browser.get(f"/files/{patients.uuid}/", {"q": "id=p299"}).content.decode()
    ) == [299]


def test_search_lists_a_page_of_matches_then_the_next_and_back(console_client, patients):
    browser = console_client("operator")
    url = f"/files/{patients.uuid}/"
    first = browser.get(url, {"q": "Lovelace", "n": 100}).content.decode()
    assert line_numbers(first) == list(range(1, 101)) and "Matches 1–100" in first
    second = browser.get(f"{url}?{follow(first, 'Next matches')}").content.decode()
    assert line_numbers(second) == list(range(101, 201)) and "Matches 101–200" in second
    back = browser.get(f"{url}?{follow(second, '← Previous matches')}").content.decode()
    assert line_numbers(back) == list(range(1, 101))
    third = browser.get(f"{url}?{follow(second, 'Next matches')}").content.decode()
    assert line_numbers(third) == list(range(201, 301))
    assert "300 matches in all" in third and "Next matches" not in third


def test_search_stops_at_its_byte_budget_and_keeps_searching_from_there(
    console_client, patients, settings
):
    settings.BULKOPS_PREVIEW_SEARCH_BYTES = 4096  # about 30 lines per request
    browser = console_client("auditor")
    url = f"/files/{patients.uuid}/"
    page = browser.get(url, {"q": "gender=female"}).content.decode()
    assert "Keep searching" in page and "ran out" in page
    seen, requests = line_numbers(page), 1
    while "Keep searching" in page or "Next matches" in page:
        label = "Keep searching" if "Keep searching" in page else "Next matches"
        page = browser.get(f"{url}?{follow(page, label)}").content.decode()
        seen += line_numbers(page)
        requests += 1
    assert seen == [7, 57, 107, 157, 207, 257]
    assert "6 matches in all" in page
    assert requests >= patients.size_bytes // 4096
    # Each request was a read of patient data, recorded with the lines it searched.
    reads = AuditEvent.objects.filter(action="export.preview").order_by("pk")
    assert reads.count() == requests
    spans = [event.details["lines"] for event in reads]
    assert spans[0][0] == 1 and spans[-1][1] == COUNT
    assert all(later[0] == earlier[1] + 1 for earlier, later in zip(spans, spans[1:], strict=False))


def test_search_stops_at_its_time_budget(console_client, local, rsa_key, settings):
    settings.BULKOPS_PREVIEW_SEARCH_MS = 1
    big = put_file("Patient", ndjson([patient(n) for n in range(20_000)]), rsa_key)
    page = console_client("operator").get(f"/files/{big.uuid}/", {"q": "nobody"}).content.decode()
    assert "Keep searching" in page
    searched = AuditEvent.objects.get(action="export.preview").details["lines"]
    assert searched[0] == 1 and searched[1] < 20_000


def test_jump_to_a_line_and_page_back(console_client, patients, settings):
    browser = console_client("operator")
    url = f"/files/{patients.uuid}/"
    jumped = browser.get(url, {"goto": 250, "n": 20}).content.decode()
    assert line_numbers(jumped) == list(range(250, 270)) and "Lines 250–269 of 300" in jumped
    back = browser.get(f"{url}?{follow(jumped, '← Previous 20 lines')}").content.decode()
    assert line_numbers(back) == list(range(230, 250))
    on = browser.get(f"{url}?{follow(back, 'Next 20 lines')}").content.decode()
    assert line_numbers(on) == list(range(250, 270))
    # From a later page, a jump backwards reads from the start of the file.
    earlier = browser.get(f"{url}?{follow(jumped, '← Previous 20 lines')}&goto=3").content.decode()
    assert line_numbers(earlier)[:1] == [3]
    # A jump past the budget says so and goes on from where it stopped.
    settings.BULKOPS_PREVIEW_SEARCH_BYTES = 4096
    far = browser.get(url, {"goto": 290, "n": 5}).content.decode()
    assert "Keep going to line 290" in far and not line_numbers(far)
    while "Keep going" in far:
        far = browser.get(f"{url}?{follow(far, 'Keep going to line 290')}").content.decode()
    assert line_numbers(far) == [290, 291, 292, 293, 294]


def test_summary_column_shows_what_each_resource_is_escaped(console_client, local, rsa_key):
    resources = [
        patient(1),
        {
            "resourceType": "Observation",
            "id": "o1",
            "code": {
                "coding": [
                    {"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}
                ]
            },
            "valueQuantity": {"value": 72, "unit": "/min"},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2026-01-01T10:00:00Z",
        },
        {
            "resourceType": "Condition",
            "id": "c1",
            "code": {"text": "<script>alert(1)</script>"},
            "clinicalStatus": {"coding": [{"code": "active"}]},
        },
        {
            "resourceType": "Encounter",
            "id": "e1",
            "class": {"code": "AMB", "display": "ambulatory"},
            "type": [{"text": "Check-up"}],
            "period": {"start": "2026-01-01", "end": "2026-01-02"},
        },
        {
            "resourceType": "MedicationRequest",
            "id": "m1",
            "status": "active",
            "medicationCodeableConcept": {"coding": [{"display": "Aspirin 81 mg"}]},
        },
        {
            "resourceType": "Procedure",
            "id": "x1",
            "status": "completed",
            "code": {"text": "Biopsy"},
        },
    ]
    file = put_file("Mixed", ndjson(resources), rsa_key)
    page = console_client("auditor").get(f"/files/{file.uuid}/").content.decode()
    summaries = [cell.split("</td>")[0] for cell in page.split('<td class="summary">')[1:]]
    for cell, words in zip(
        summaries,
        [
            ["Ada1 Lovelace", "<dd>male</dd>", "1901-01-01"],
            ["Heart rate", "72 /min", "Patient/p1", "2026-01-01T10:00:00Z"],
            ["&lt;script&gt;alert(1)&lt;/script&gt;", "active"],
            ["Check-up", "ambulatory", "2026-01-01 – 2026-01-02"],
            ["Aspirin 81 mg", "active"],
            ["Biopsy", "completed"],
        ],
        strict=True,
    ):
        assert all(word in cell for word in words), (words, cell)
    assert "<script>alert(1)" not in page


def test_csv_of_the_lines_shown_is_spreadsheet_safe_and_audited(console_client, local, rsa_key):
    hostile = [
        {**patient(1), "name": [{"text": '=HYPERLINK("http://evil","x")'}]},
        {**patient(2), "name": [{"text": "+1+2"}], "gender": "-female"},
        {**patient(3), "name": [{"text": "@SUM(A1)"}]},
        patient(4),
    ]
    file = put_file("Patient", ndjson(hostile), rsa_key)
    browser = console_client("auditor")
    page = browser.get(f"/files/{file.uuid}/", {"n": 3}).content.decode()
    link = html.unescape(re.search(r'href="(/files/[^"]*page\.csv[^"]*)"', page).group(1))
    AuditEvent.objects.all().delete()
    response = browser.get(link)
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["line", "resourceType", "id", "lastUpdated", "name", "gender", "born"]
    assert [row[4] for row in rows[1:]] == ['\'=HYPERLINK("http://evil","x")', "'+1+2", "'@SUM(A1)"]
    assert rows[2][5] == "'-female" and rows[1][0] == "1"
    assert AuditEvent.objects.get(action="export.preview").details["lines"] == [1, 3]
    # The CSV of a search holds its matches.
    found = browser.get(f"/files/{file.uuid}/page.csv", {"q": "id=p4"}).content.decode()
    assert [row[2] for row in csv.reader(io.StringIO(found))] == ["id", "p4"]


def test_s3_search_reads_one_bounded_range_per_request(console_client, s3, rsa_key, settings):
    settings.BULKOPS_PREVIEW_SEARCH_BYTES = 64 * 1024
    lines = ndjson([patient(n) for n in range(1, 3001)])
    file = put_file("Patient", lines, rsa_key)
    size = file.size_bytes
    fetched: list[dict] = []

    def record(parsed: dict, **_: object) -> None:
        fetched.append(parsed)

    events = get_storage().client.meta.events
    events.register("after-call.s3.GetObject", record)
    try:
        browser: Client = console_client("operator")
        page = browser.get(f"/files/{file.uuid}/", {"q": "Ada2999"}).content.decode()
        assert "Keep searching" in page and len(fetched) == 1
        assert fetched[0]["ContentLength"] == 64 * 1024 + MAX_LINE_BYTES < size
        requests = 1
        while "Keep searching" in page:
            page = browser.get(f"/files/{file.uuid}/?{follow(page, 'Keep searching')}")
            page = page.content.decode()
            requests += 1
    finally:
        events.unregister("after-call.s3.GetObject", record)
    assert line_numbers(page) == [2999]
    assert len(fetched) == requests > size // (64 * 1024) - 1  # one range each
