"""Export pages: list and filters, launch with scope lint, live progress, cancel,
delete, re-run, manifest, NDJSON preview and download, per role."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from accounts.services import register_client
from exports.models import ExportFile, ExportJob, ExportPartition
from exports.partitions import claim_partition, plan_export
from exports.preview import PAGE_WINDOW, read_page
from exports.recovery import reap_stalled_exports
from exports.storage import get_storage
from exports.storage.local import LocalStorage
from tests.exports.conftest import wait_for_job


def launch_data(client, **fields: str) -> dict[str, str]:
    data = {
        "client": client.client_id if client else "",
        "level": "group",
        "group_id": "g1",
        "types": "",
        "since": "",
        "elements": "",
        "output_format": "application/fhir+ndjson",
    }
    return {**data, **fields}


@pytest.fixture
def patient_reader(db, rsa_key):
    return register_client(name="Patient reader", jwks=rsa_key.jwks(), scopes="system/Patient.read")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "list_status", "launch_status"),
    [("admin", 200, 200), ("operator", 200, 200), ("auditor", 200, 403), (None, 403, 403)],
)
def test_who_sees_exports_and_who_launches(console_client, role, list_status, launch_status):
    browser = console_client(role)
    assert browser.get("/exports/").status_code == list_status
    assert browser.get("/exports/new/").status_code == launch_status


@pytest.mark.django_db
def test_auditor_cannot_launch_lint_cancel_or_download(console_client, store, client_a):
    job = client_a.backend_client.export_jobs.create(
        level="system", request_url="x", transaction_time=timezone.now()
    )
    browser = console_client("auditor")
    assert browser.post("/exports/new/", launch_data(client_a.backend_client)).status_code == 403
    assert browser.post("/exports/new/lint/", {}).status_code == 403
    assert browser.post(f"/exports/{job.uuid}/delete/").status_code == 403
    assert browser.post(f"/exports/{job.uuid}/rerun/").status_code == 403
    job.refresh_from_db()
    assert job.deleted_at is None
    assert ExportJob.objects.count() == 1


@pytest.mark.django_db
def test_scope_lint_shows_the_warning_the_api_writes(
    console_client, store, make_fhir_client, jwk_a, patient_reader
):
    api_client = make_fhir_client(jwk_a, scopes="system/Patient.read")
    api_client.kick_off("/fhir/Group/g1/$export?_type=Patient,Observation,Binary")
    api_warnings = ExportJob.objects.get().warnings
    assert len(api_warnings) == 2

    response = console_client("operator").post(
        "/exports/new/lint/",
        launch_data(patient_reader, types="Patient,Observation,Binary"),
        headers={"HX-Request": "true"},
    )
    page = response.content.decode()
    assert page.lstrip().startswith('<div id="scope-lint">')
    assert "1 resource type would be exported" in page
    for warning in api_warnings:
        assert html.escape(warning) in page


@pytest.mark.django_db
def test_scope_lint_explains_a_refusal(console_client, store, patient_reader):
    response = console_client("operator").post(
        "/exports/new/lint/", launch_data(patient_reader, types="Observation")
    )
    page = html.unescape(response.content.decode())
    assert "The API would refuse this export:" in page
    assert "Observation was requested but this client's token only grants system/Patient.read" in (
        page
    )


@pytest.mark.django_db
def test_launch_with_bad_since_is_refused_and_starts_nothing(console_client, store, client_a):
    response = console_client("operator").post(
        "/exports/new/", launch_data(client_a.backend_client, since="yesterday")
    )
    assert response.status_code == 200
    assert "The API would refuse this export:" in response.content.decode()
    assert not ExportJob.objects.exists()


@pytest.mark.django_db
def test_group_level_needs_a_group(console_client, store, client_a):
    response = console_client("operator").post(
        "/exports/new/", launch_data(client_a.backend_client, group_id="")
    )
    field = response.content.decode().split('id="field-group_id"')[1].split("</div>")[0]
    assert "Choose the Group to export." in field
    assert not ExportJob.objects.exists()


@pytest.mark.django_db
def test_launch_records_operator_and_shows_polling_progress(console_client, store, client_a):
    browser = console_client("operator")
    response = browser.post("/exports/new/", launch_data(client_a.backend_client, types="Patient"))
    job = ExportJob.objects.get()
    assert response["Location"] == f"/exports/{job.uuid}/"
    assert (job.client, job.level, job.group_id, job.types) == (
        client_a.backend_client,
        "group",
        "g1",
        ["Patient"],
    )
    assert job.request_url.endswith(
        "/fhir/Group/g1/$export?_type=Patient&_outputFormat=application%2Ffhir%2Bndjson"
    )
    event = AuditEvent.objects.get(action="export.kickoff")
    assert (event.actor_type, event.actor) == ("operator", "operator-user")
    assert event.details["client_id"] == client_a.backend_client.client_id

    fragment = browser.get(f"/exports/{job.uuid}/progress/", headers={"HX-Request": "true"})
    text = fragment.content.decode()
    assert text.lstrip().startswith(f'<section id="job-{job.uuid}-progress"')
    assert 'hx-trigger="every 2s"' in text
    assert "0% - planning" in text


@pytest.mark.django_db
def test_cancel_from_the_console_frees_the_job_and_is_audited(console_client, store, client_a):
    browser = console_client("operator")
    browser.post("/exports/new/", launch_data(client_a.backend_client))
    job = ExportJob.objects.get()
    response = browser.post(f"/exports/{job.uuid}/delete/", headers={"HX-Request": "true"})
    text = response.content.decode()
    assert text.lstrip().startswith(f'<section id="job-{job.uuid}-progress"')
    assert "cancelled" in text and "every 2s" not in text
    job.refresh_from_db()
    assert job.status == "cancelled" and job.deleted_at is not None
    event = AuditEvent.objects.get(action="export.cancelled")
    assert (event.actor, event.details["job"]) == ("operator-user", str(job.uuid))
    page = browser.get(f"/exports/{job.uuid}/").content.decode()
    assert "export.kickoff" in page and "export.cancelled" in page


@pytest.mark.django_db
def test_job_list_filters(console_client, store, client_a, client_b):
    for client, level in ((client_a, "system"), (client_b, "patient")):
        client.backend_client.export_jobs.create(
            level=level, request_url="x", transaction_time=timezone.now()
        )
    browser = console_client("auditor")

    def listed(**filters: str) -> str:
        page = browser.get("/exports/", filters).content.decode()
        return page.split("<tbody>")[1].split("</tbody>")[0]

    rows = listed(client=client_b.backend_client.client_id)
    assert "client-b" in rows and "client-a" not in rows
    rows = listed(level="system")
    assert "client-a" in rows and "client-b" not in rows
    assert "No exports match these filters." in listed(status="failed")
    rows = listed(q="client-b", sort="client")
    assert "client-b" in rows and "client-a" not in rows


@pytest.mark.django_db
def test_unknown_job_and_file_are_404(console_client):
    browser = console_client("operator")
    missing = "00000000-0000-0000-0000-000000000000"
    assert browser.get(f"/exports/{missing}/").status_code == 404
    assert browser.get(f"/files/{missing}/").status_code == 404


def test_preview_reads_only_the_page_it_shows(tmp_path):
    line = b'{"resourceType":"Observation","id":"o","note":"' + b"x" * 1000 + b'"}\n'
    storage = LocalStorage(tmp_path)
    with storage.open_writer("job/Observation.ndjson") as writer:
        writer.write(line * 5000)  # 5 MB
    size = storage.size("job/Observation.ndjson")
    with storage.open_range("job/Observation.ndjson", 0, PAGE_WINDOW) as handle:
        page = read_page(handle, offset=0, size=size, first_line=1, count=3)
    assert [entry.number for entry in page.lines] == [1, 2, 3]
    assert page.next_offset == page.bytes_read == 3 * len(line)
    with storage.open_range("job/Observation.ndjson", page.next_offset, PAGE_WINDOW) as handle:
        later = read_page(handle, offset=page.next_offset, size=size, first_line=4, count=2)
    assert [entry.number for entry in later.lines] == [4, 5]
    last = size - len(line)
    with storage.open_range("job/Observation.ndjson", last, PAGE_WINDOW) as handle:
        end = read_page(handle, offset=last, size=size, first_line=5000, count=50)
    assert [entry.number for entry in end.lines] == [5000]
    assert end.next_offset is None


def test_local_range_reader_stops_at_its_length(tmp_path):
    storage = LocalStorage(tmp_path)
    with storage.open_writer("job/a.ndjson") as writer:
        writer.write(b"0123456789")
    with storage.open_range("job/a.ndjson", 3, 4) as handle:
        assert handle.read() == b"3456"
    with storage.open_range("job/a.ndjson", 20, 4) as handle:
        assert handle.read() == b""


@pytest.mark.django_db
def test_s3_preview_fetches_only_the_page_from_a_middle_offset(console_client, s3, patient_reader):
    """A 6 MB object previewed from its middle: one ranged GET of one page's bytes."""
    line = b'{"resourceType":"Patient","id":"p%05d","note":"' + b"y" * 2000 + b'"}\n'
    body = b"".join(line % n for n in range(3000))
    job = ExportJob.objects.create(
        client=patient_reader, level="system", request_url="x", transaction_time=timezone.now()
    )
    key = f"{job.uuid}/Patient-1.ndjson"
    s3.server.client().put_object(Bucket=s3.name, Key=key, Body=body)
    file = ExportFile.objects.create(
        job=job,
        kind=ExportFile.Kind.OUTPUT,
        resource_type="Patient",
        storage_key=key,
        resource_count=3000,
        size_bytes=len(body),
    )
    fetched: list[dict] = []

    def record(parsed: dict, **_: object) -> None:
        fetched.append(parsed)

    events = get_storage().client.meta.events
    events.register("after-call.s3.GetObject", record)
    middle = 1500 * len(line % 0)
    page = console_client("operator").get(
        f"/files/{file.uuid}/", {"offset": middle, "line": 1501, "n": 3}
    )
    events.unregister("after-call.s3.GetObject", record)
    text = page.content.decode()
    assert "p01500" in text and "p01502" in text and "p01503" not in text
    assert "p01499" not in text
    assert len(fetched) == 1
    assert fetched[0]["ContentRange"] == f"bytes {middle}-{middle + PAGE_WINDOW - 1}/{len(body)}"
    assert fetched[0]["ContentLength"] == PAGE_WINDOW < len(body) // 4


@pytest.mark.django_db(transaction=True)
def test_finished_export_manifest_preview_download_and_delete(
    console_client, store, client_a, celery_worker, django_assert_max_num_queries
):
    browser = console_client("operator")
    browser.post("/exports/new/", launch_data(client_a.backend_client))
    job = wait_for_job(str(ExportJob.objects.get().uuid))
    assert job.status == "completed"

    # session, user, their time zone, 2 permission reads, job, 3 partition reads, the
    # files written per type, and the remote panel's look-up: none grows with the job
    with django_assert_max_num_queries(11):
        assert browser.get(f"/exports/{job.uuid}/progress/").status_code == 200
    poll = browser.get(f"/exports/{job.uuid}/progress/", headers={"HX-Request": "true"})
    assert poll["HX-Refresh"] == "true"  # the page reloads once to show the manifest
    page = browser.get(f"/exports/{job.uuid}/").content.decode()
    assert 'hx-trigger="every 2s"' not in page
    assert "100%" in page and "Manifest JSON" in page and "transactionTime" in page
    assert re.search(r"Partitions \(\d+\)", page) and "done" in page
    observations = ExportFile.objects.get(job=job, resource_type="Observation")
    assert f"/files/{observations.uuid}/" in page

    preview = browser.get(f"/files/{observations.uuid}/", {"n": 2}).content.decode()
    assert "<script>alert" not in preview
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in preview
    assert "Lines 1–2 of 4" in preview
    assert "Next 2 lines" in preview
    filtered = browser.get(f"/files/{observations.uuid}/", {"q": "p2-o1"}).content.decode()
    assert "1 match" in filtered and "p2-o1" in filtered and "p1-o0" not in filtered
    nothing = browser.get(f"/files/{observations.uuid}/", {"q": "zzz"}).content.decode()
    assert "No line matches" in nothing and "0 matches in the whole file" in nothing

    download = browser.get(f"/files/{observations.uuid}/download/")
    body = b"".join(download.streaming_content)
    assert body.count(b"\n") == observations.resource_count == 4
    assert AuditEvent.objects.filter(action="export.download", actor="operator-user").exists()
    auditor = console_client("auditor")
    assert auditor.get(f"/files/{observations.uuid}/").status_code == 200
    assert auditor.get(f"/files/{observations.uuid}/download/").status_code == 403

    response = browser.post(f"/exports/{job.uuid}/delete/", headers={"HX-Request": "true"})
    assert response["HX-Refresh"] == "true"
    assert browser.get(f"/files/{observations.uuid}/").status_code == 404
    assert AuditEvent.objects.filter(action="export.deleted", actor="operator-user").exists()

    rerun = browser.post(f"/exports/{job.uuid}/rerun/")
    new_job = ExportJob.objects.exclude(pk=job.pk).get()
    assert rerun["Location"] == f"/exports/{new_job.uuid}/"
    assert wait_for_job(str(new_job.uuid)).status == "completed"


@pytest.mark.django_db
def test_console_exports_on_its_own_behalf(console_client, store):
    browser = console_client("operator")
    lint = browser.post("/exports/new/lint/", launch_data(None)).content.decode()
    assert "Acting as <strong>the console itself</strong>" in lint
    assert "Nothing requested is left out." in lint
    response = browser.post("/exports/new/", launch_data(None, types="Patient"))
    job = ExportJob.objects.get()
    assert response["Location"] == f"/exports/{job.uuid}/"
    assert (job.client, job.types) == (None, ["Patient"])
    event = AuditEvent.objects.get(action="export.kickoff")
    assert (event.actor_type, event.actor, event.details["client_id"]) == (
        "operator",
        "operator-user",
        "",
    )
    rows = browser.get("/exports/").content.decode().split("<tbody>")[1]
    assert "console" in rows


@pytest.mark.django_db
def test_job_timeline_shows_the_reaper_handing_a_lost_workers_part_on(
    console_client, store, client_a
):
    response = client_a.kick_off(data={"_type": "Observation"})
    job = ExportJob.objects.get(uuid=response["Content-Location"].rsplit("/", 1)[1])
    (partition_id,) = plan_export(job.pk)
    claim_partition(partition_id, "celery@host-b", timezone.now())
    ExportPartition.objects.filter(pk=partition_id).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )

    reap_stalled_exports(timezone.now())

    page = console_client("auditor").get(f"/exports/{job.uuid}/").content.decode()
    timeline = page[page.index('<table class="events">') :]
    assert "export.recovered" in timeline
    assert (
        "The Observation part (1) was queued again for any worker: its worker celery@host-b "
        "stopped renewing its lease."
    ) in timeline


def test_launch_form_opens_on_a_level_that_needs_nothing_and_launches_as_it_is(
    console_client, store
):
    browser = console_client("operator")
    page = browser.get("/exports/new/").content.decode()
    assert '<option value="system" selected>System</option>' in page
    assert '<option value="g1">Cohort 1 (g1)</option>' in page  # Groups by name, id second
    assert 'hx-trigger="change, input delay:500ms"' in page  # paste and autofill refresh it
    preview = browser.post("/exports/new/lint/", launch_data(None, level="system", group_id=""))
    assert "would be exported" in preview.content.decode()
    launched = browser.post("/exports/new/", launch_data(None, level="system", group_id=""))
    assert launched.status_code == 302
    assert ExportJob.objects.get().level == "system"


@pytest.mark.django_db
def test_live_preview_marks_the_field_it_complains_about(console_client, store):
    browser = console_client("operator")
    response = browser.post(
        "/exports/new/lint/", launch_data(None, group_id=""), headers={"HX-Request": "true"}
    )
    page = response.content.decode()
    assert '<a href="#field-group_id">Group</a>: Choose the Group to export.' in page
    marked = page.split('<div id="errors-group_id" class="field-errors" hx-swap-oob="true">')[1]
    assert marked.split("</div>")[0].count("Choose the Group to export.") == 1
    # Fixed, the same swap clears the mark.
    fixed = browser.post("/exports/new/lint/", launch_data(None), headers={"HX-Request": "true"})
    cleared = fixed.content.decode().split('<div id="errors-group_id"')[1].split("</div>")[0]
    assert "Choose the Group" not in cleared


@pytest.mark.django_db
def test_small_types_sharing_partitions_show_their_types_and_progress(
    console_client, store, settings
):
    """A plain export of more than BULKOPS_PARTITION_SIZE rows reads its small types in
    shared partitions: the page names the types of each and counts them per type."""
    from exports.partitions import plan_export as plan_partitions
    from exports.partitions import run_partition

    settings.BULKOPS_PARTITION_SIZE = 4
    browser = console_client("operator")
    browser.post("/exports/new/", launch_data(None, level="system", group_id=""))
    job = ExportJob.objects.get()
    for partition_id in plan_partitions(job.pk):
        run_partition(partition_id=partition_id, worker="test-worker")
    page = browser.get(f"/exports/{job.uuid}/").content.decode()
    assert "<td>+ (Condition, Group)</td>" in page
    assert "<td>+ (Patient, Practitioner)</td>" in page
    table = page.split("<th>Progress</th>")[1].split("</table>")[0]
    rows = re.findall(
        r'<td class="type-name">([\w*+]+)</td>\s*<td class="num">[^<]*</td>\s*'
        r'<td class="num">([^<]*)</td>',
        table,
    )
    assert dict(rows) == {
        "Condition": "3 of ~3",
        "Group": "1 of ~1",
        "Observation": "6 of ~6",
        "Patient": "3 of ~3",
        "Practitioner": "1 of ~1",
    }


@pytest.mark.django_db
def test_system_export_shows_progress_per_type_with_data(console_client, store):
    from exports.partitions import plan_export as plan_partitions
    from exports.partitions import run_partition

    browser = console_client("operator")
    browser.post("/exports/new/", launch_data(None, level="system", group_id=""))
    job = ExportJob.objects.get()
    assert len(job.types) > 100  # every R4 type the console may read
    partitions = plan_partitions(job.pk)

    def type_rows() -> dict[str, str]:
        page = browser.get(f"/exports/{job.uuid}/").content.decode()
        table = page.split("<th>Progress</th>")[1].split("</table>")[0]
        rows = dict(
            re.findall(
                r'<td class="type-name">([\w*]+)</td>\s*<td class="num">[^<]*</td>\s*'
                r'<td class="num">([^<]*)</td>',
                table,
            )
        )
        assert "*" not in rows
        types_fact = page.split("<dt>Types</dt>")[1].split("</dd>")[0]
        assert f"<summary>{len(job.types)} types</summary>" in types_fact
        return rows

    assert type_rows() == {
        "Condition": "0 of ~3",
        "Group": "0 of ~1",
        "Observation": "0 of ~6",
        "Patient": "0 of ~3",
        "Practitioner": "0 of ~1",
    }
    for partition_id in partitions:
        run_partition(partition_id=partition_id, worker="test-worker")
    assert type_rows() == {
        "Condition": "3 of ~3",
        "Group": "1 of ~1",
        "Observation": "6 of ~6",
        "Patient": "3 of ~3",
        "Practitioner": "1 of ~1",
    }


@pytest.mark.django_db(transaction=True)
def test_a_v4_job_page_shows_the_manifest_its_client_gets(
    console_client, store, client_a, celery_worker
):
    kickoff = client_a.post_kick_off(
        "/fhir/$export-v4", [{"name": "organizeOutputBy", "valueString": "Patient"}]
    )
    job = wait_for_job(kickoff["Content-Location"].rsplit("/", 1)[1])
    page = html.unescape(console_client("operator").get(f"/exports/{job.uuid}/").content.decode())
    assert '"manifestType": "http://hl7.org/fhir/uv/bulkdata/StructureDefinition/' in page
    assert '"outputOrganizedBy": "Patient"' in page and '"request"' not in page


@pytest.mark.django_db
def test_console_launches_a_bulk_data_4_export_and_its_page_says_so(
    console_client, store, client_a
):
    data = launch_data(
        client_a.backend_client, types="Patient,Condition", bulk_version="4.0.0",
        organize_by_patient="on", allow_partial_manifests="on",
    )  # fmt: skip
    assert console_client("auditor").post("/exports/new/", data).status_code == 403
    assert not ExportJob.objects.exists()

    browser = console_client("operator")
    response = browser.post("/exports/new/", data)
    job = ExportJob.objects.get()
    assert response["Location"] == f"/exports/{job.uuid}/"
    assert job.bulk_version == "4.0.0"
    assert job.parameters["organizeOutputBy"] == "Patient"
    assert job.parameters["allowPartialManifests"] is True
    assert "/fhir/Group/g1/$export-v4?_type=Patient&_type=Condition&organizeOutputBy=Patient" in (
        job.request_url
    )
    page = browser.get(f"/exports/{job.uuid}/").content.decode()
    assert "4.0.0 ballot ($export-v4), organised by Patient, partial manifests" in page

    browser.post(f"/exports/{job.uuid}/rerun/")
    again = ExportJob.objects.exclude(pk=job.pk).get()
    assert again.bulk_version == "4.0.0"
    assert again.parameters == job.parameters and again.types == job.types


@pytest.mark.django_db
def test_bulk_data_4_options_on_a_2_0_0_launch_are_refused_next_to_the_field(
    console_client, store, client_a
):
    browser = console_client("operator")
    data = launch_data(client_a.backend_client, organize_by_patient="on")
    response = browser.post("/exports/new/", data)
    assert response.status_code == 200
    assert "organizeOutputBy is a Bulk Data 4.0.0 parameter: choose 4.0.0." in html.unescape(
        response.content.decode()
    )
    assert not ExportJob.objects.exists()
