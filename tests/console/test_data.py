"""The data page: inventory, Groups from patient ids, uploads through load_fhir's loader."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import AuditEvent
from exports.models import ExportJob
from fhirstore.models import GroupMembership, Resource

pytestmark = pytest.mark.django_db
DATA = Path(__file__).parents[1] / "data"


def upload(path: Path) -> SimpleUploadedFile:
    return SimpleUploadedFile(path.name, path.read_bytes())


@pytest.mark.parametrize(
    ("role", "read", "write"),
    [("admin", 200, 302), ("operator", 200, 302), ("auditor", 200, 403), (None, 403, 403)],
)
def test_who_reads_and_changes_data(console_client, store, role, read, write) -> None:
    browser = console_client(role)
    assert browser.get("/data/").status_code == read
    response = browser.post("/data/groups/", {"name": "Pair", "patients": "p1 p3"})
    assert response.status_code == write
    assert Resource.objects.filter(resource_type="Group").count() == (2 if write == 302 else 1)


def test_page_lists_types_and_group_members(console_client, store) -> None:
    page = console_client("auditor").get("/data/").content.decode()
    assert '<td class="type-name">Observation</td><td class="num">6</td>' in page
    assert 'Cohort 1 <span class="muted mono">g1</span></span></td><td class="num">2</td>' in page


def test_edit_group_prefills_and_replaces_members(console_client, store) -> None:
    browser = console_client("operator")
    page = browser.get("/data/", {"group": "g1"}).content.decode()
    assert 'value="g1"' in page and "p1\np2" in page
    browser.post("/data/groups/", {"group_id": "g1", "name": "Cohort 1", "patients": "p3, p1"})
    members = GroupMembership.objects.filter(group__resource_id="g1")
    assert sorted(members.values_list("patient_id", flat=True)) == ["p1", "p3"]
    event = AuditEvent.objects.filter(action="group.upserted", details__group="g1").first()
    assert event.actor == "operator-user"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"patients": "p1 nobody"}, "patients", "no such patients: nobody"),
        ({"group_id": "bad id!"}, "group_id", "is not a FHIR id"),
        ({"name": ""}, "name", "This field is required."),
    ],
)
def test_bad_group_input_is_explained_and_changes_nothing(
    console_client, store, fields, field, message
) -> None:
    data = {"group_id": "", "name": "New", "patients": "p1", **fields}
    response = console_client("operator").post("/data/groups/", data)
    assert response.status_code == 400
    html = response.content.decode().split(f'id="field-{field}"')[1].split("</div>")[0]
    assert message in html.replace("&#x27;", "'")
    assert Resource.objects.filter(resource_type="Group").count() == 1


def test_upload_loads_good_files_and_reports_bad_ones(console_client) -> None:
    files = [upload(DATA / "ndjson" / "Observation.ndjson"), upload(DATA / "bad" / "invalid.json")]
    browser = console_client("operator")
    response = browser.post("/data/upload/", {"files": files})
    report = response.content.decode().split('id="upload-report"')[1].split("</section>")[0]
    assert "Observation.ndjson" in report and "loaded" in report
    assert "3 created, 0 updated, 0 unchanged" in report  # the file's three lines
    assert "invalid.json" in report and "not loaded" in report and "invalid JSON" in report
    assert Resource.objects.filter(resource_type="Observation").exists()
    event = AuditEvent.objects.get(action="data.uploaded")
    assert (event.actor, event.outcome) == ("operator-user", "failure")
    assert [f["name"] for f in event.details["files"]] == ["Observation.ndjson", "invalid.json"]
    again = browser.post(
        "/data/upload/", {"files": [upload(DATA / "ndjson" / "Observation.ndjson")]}
    )
    assert "0 created, 0 updated, 3 unchanged" in again.content.decode()


def test_upload_over_the_size_limit_is_refused_next_to_the_field(console_client, settings) -> None:
    settings.BULKOPS_MAX_UPLOAD_BYTES = 1000
    files = [
        upload(DATA / "ndjson" / "Observation.ndjson"),
        upload(DATA / "ndjson" / "Patient.ndjson.gz"),
    ]
    browser = console_client("operator")
    response = browser.post("/data/upload/", {"files": files})
    assert response.status_code == 400
    field = response.content.decode().split('id="field-files"')[1].split("</div>")[0]
    assert "at most 1000\xa0bytes can be uploaded at once" in field
    assert "This field is required." not in field
    assert not Resource.objects.filter(resource_type="Observation").exists()
    assert not AuditEvent.objects.filter(action="data.uploaded").exists()

    settings.BULKOPS_MAX_UPLOAD_BYTES = 100_000  # the same files fit under a larger limit
    files = [
        upload(DATA / "ndjson" / "Observation.ndjson"),
        upload(DATA / "ndjson" / "Patient.ndjson.gz"),
    ]
    response = browser.post("/data/upload/", {"files": files})
    assert response.status_code == 200
    assert Resource.objects.filter(resource_type="Observation").exists()


def test_upload_needs_a_file(console_client) -> None:
    response = console_client("operator").post("/data/upload/", {})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()


def test_a_group_is_named_wherever_it_appears(console_client, store, client_a) -> None:
    """Export list and title, and a client's bindings, name the Group, id second."""
    client_a.kick_off("/fhir/Group/g1/$export")
    job = ExportJob.objects.get()
    named = 'Cohort 1 <span class="muted mono">g1</span>'
    browser = console_client("auditor")
    assert named in browser.get("/exports/").content.decode()
    assert named in browser.get(f"/exports/{job.uuid}/").content.decode().split("</h1>")[0]
    client_a.backend_client.bound_groups.create(group_id="g1")
    detail = browser.get(f"/clients/{client_a.backend_client.client_id}/").content.decode()
    assert named in detail.split("<dt>Groups</dt>")[1].split("</dd>")[0]
    assert named in browser.get("/clients/").content.decode()


def test_deleting_a_group_asks_first_and_is_audited(console_client, store) -> None:
    browser = console_client("operator")
    page = browser.get("/data/").content.decode()
    form = page.split('id="group-g1"')[1].split("</tr>")[0]
    assert 'hx-confirm="Delete Group/g1?' in form
    assert console_client("auditor").post("/data/groups/g1/delete/").status_code == 403
    assert Resource.objects.live().filter(resource_type="Group").exists()

    response = browser.post("/data/groups/g1/delete/", headers={"HX-Request": "true"})
    assert response["HX-Redirect"] == "/data/"
    assert not Resource.objects.live().filter(resource_type="Group").exists()
    event = AuditEvent.objects.get(action="group.deleted")
    assert (event.actor, event.details, event.ip_address) == (
        "operator-user",
        {"group": "g1"},
        "127.0.0.1",
    )
    again = browser.post("/data/groups/g1/delete/", follow=True).content.decode()
    assert "No such group: g1." in again


def test_patients_are_found_by_id_or_name_and_ticked_into_a_group(console_client, store) -> None:
    browser = console_client("operator")
    by_id = browser.get("/data/patients/", {"patient_q": "p"}).content.decode()
    assert by_id.count('name="add_patients"') == 3
    by_name = browser.get("/data/patients/", {"patient_q": "fam-P3"}).content.decode()
    assert 'value="p3"' in by_name and "Fam-p3" in by_name and 'value="p1"' not in by_name
    nothing = browser.get("/data/patients/", {"patient_q": "<b>x"}).content.decode()
    assert "No patient’s id starts with, or name contains, “&lt;b&gt;x”" in nothing
    assert console_client("auditor").get("/data/patients/", {"patient_q": "p"}).status_code == 403

    browser.post(
        "/data/groups/",
        {"group_id": "g2", "name": "Ticked", "patients": "", "add_patients": ["p3"]},
    )
    members = GroupMembership.objects.filter(group__resource_id="g2")
    assert list(members.values_list("patient_id", flat=True)) == ["p3"]
    empty = browser.post("/data/groups/", {"group_id": "g3", "name": "None", "patients": ""})
    assert "Name at least one patient" in empty.content.decode()


def test_cohort_builder_counts_live_and_saves_a_cohort_group(console_client, store) -> None:
    browser = console_client("operator")
    page = browser.get("/data/").content.decode()
    assert 'id="cohort-form"' in page and 'hx-post="/data/cohorts/count/"' in page
    count = browser.post(
        "/data/cohorts/count/",
        {"filters": "Patient?gender=female\nObservation?code=http://loinc.org|8867-4"},
        headers={"HX-Request": "true"},
    ).content.decode()
    assert "<strong>3</strong> patients match every filter now." in count
    refused = browser.post("/data/cohorts/count/", {"filters": "Patient?bogus=1"}).content
    assert b"refused" in refused and b"bogus" in refused
    response = browser.post(
        "/data/cohorts/",
        {"cohort_id": "women", "cohort_name": "Women", "filters": "Patient?gender=female"},
    )
    assert response.status_code == 302
    members = GroupMembership.objects.filter(group__resource_id="women")
    assert sorted(members.values_list("patient_id", flat=True)) == ["p1", "p2", "p3"]
    assert AuditEvent.objects.filter(action="group.cohort_saved", actor="operator-user").exists()


def test_a_refused_cohort_filter_is_explained_next_to_the_field(console_client, store) -> None:
    response = console_client("operator").post(
        "/data/cohorts/", {"cohort_name": "Bad", "filters": "Patient?gender=female&_sort=name"}
    )
    assert response.status_code == 400
    html = response.content.decode().split('id="field-filters"')[1].split("</div>")[0]
    assert "cannot be applied" in html and "_sort" in html
    assert Resource.objects.filter(resource_type="Group").count() == 1
    assert console_client("auditor").post("/data/cohorts/count/", {}).status_code == 403
