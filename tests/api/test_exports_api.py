"""Exports through the operator API: launch for a client, watch, browse files, cancel,
delete; every change audited under the operator."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent
from accounts.services import disable_client
from exports.api import PREVIEW_MAX_BYTES
from exports.models import ExportFile, ExportJob
from exports.storage import get_storage
from tests.exports.conftest import wait_for_job


def launch(api, client_id: str, **fields):
    return api.post("/api/v1/exports/launch", {"client_id": client_id, **fields})


@pytest.mark.django_db(transaction=True)
def test_launched_export_runs_and_shows_progress_files_and_previews(
    api_as, client_a, store, celery_worker
):
    operator = api_as("operator")
    response = launch(operator, client_a.backend_client.client_id, level="group", group_id="g1")
    assert response.status_code == 201, response.content
    job = response.json()
    assert job["status"] == "accepted"
    assert job["progress"] == "0% - planning"
    assert job["request_url"] == "http://testserver/fhir/Group/g1/$export"
    kickoff = AuditEvent.objects.get(action="export.kickoff")
    assert (kickoff.actor_type, kickoff.actor) == ("operator", "operator-api")
    assert kickoff.details["client_id"] == client_a.backend_client.client_id

    wait_for_job(job["uuid"])
    detail = operator.get(f"/api/v1/exports/{job['uuid']}").json()
    assert (detail["status"], detail["percent_done"]) == ("completed", 100)
    counts = {f["type"]: f["count"] for f in detail["files"] if f["kind"] == "output"}
    assert counts == {"Condition": 2, "Observation": 4, "Patient": 2}
    files = operator.get(f"/api/v1/exports/{job['uuid']}/files/").json()
    assert files["count"] == len(detail["files"])
    observations = next(f for f in detail["files"] if f["type"] == "Observation")
    assert observations["url"].startswith("http://testserver/fhir/bulkfiles/")

    preview = operator.get(f"/api/v1/files/{observations['uuid']}/preview", lines=1).json()
    assert preview["count"] == 4
    assert len(preview["lines"]) == 1 and preview["truncated"] is True
    assert preview["lines"][0]["resourceType"] == "Observation"
    whole = operator.get(f"/api/v1/files/{observations['uuid']}/preview", lines=100).json()
    assert (len(whole["lines"]), whole["truncated"]) == (4, False)
    previews = AuditEvent.objects.filter(action="export.preview", actor="operator-api")
    assert sorted(e.details["lines"] for e in previews) == [[1, 1], [1, 4]]

    deleted = operator.post(f"/api/v1/exports/{job['uuid']}/delete")
    assert deleted.status_code == 204
    gone = operator.get(f"/api/v1/exports/{job['uuid']}").json()
    assert gone["deleted_at"] is not None and gone["files"] == []
    event = AuditEvent.objects.get(action="export.deleted")
    assert (event.actor_type, event.actor) == ("operator", "operator-api")
    again = operator.post(f"/api/v1/exports/{job['uuid']}/delete")
    assert again.status_code == 404


@pytest.mark.django_db
def test_cancel_stops_a_running_export_and_is_audited(api_as, client_a, store):
    operator = api_as("operator")
    job = launch(operator, client_a.backend_client.client_id, level="system").json()
    cancelled = operator.post(f"/api/v1/exports/{job['uuid']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    event = AuditEvent.objects.get(action="export.cancelled")
    assert (event.actor, event.details["job"]) == ("operator-api", job["uuid"])
    assert operator.post(f"/api/v1/exports/{job['uuid']}/cancel").status_code == 404
    deleted = operator.get("/api/v1/exports/", deleted="true").json()["results"]
    assert [j["uuid"] for j in deleted] == [job["uuid"]]
    assert operator.get("/api/v1/exports/", deleted="false").json()["results"] == []


@pytest.mark.django_db
def test_cancelling_a_finished_export_is_a_conflict(api_as, client_a, store):
    operator = api_as("operator")
    job = launch(operator, client_a.backend_client.client_id, level="system").json()
    ExportJob.objects.filter(uuid=job["uuid"]).update(status=ExportJob.Status.COMPLETED)
    response = operator.post(f"/api/v1/exports/{job['uuid']}/cancel")
    assert response.status_code == 409
    assert response.json() == {
        "status": 409,
        "code": "conflict",
        "detail": "The export is already completed; DELETE it to remove its files.",
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"level": "system"}, {"client_id": ["This field is required."]}),
        (
            {"client_id": "nope", "level": "system"},
            {"client_id": ["No active client has this id."]},
        ),
        (
            {"client_id": "A", "level": "galaxy"},
            {"level": ['"galaxy" is not a valid choice.']},
        ),
        (
            {"client_id": "A", "level": "group"},
            {"group_id": ["Give group_id for a group export, and only then."]},
        ),
        (
            {"client_id": "A", "level": "system", "types": ["Nonsense"]},
            {"non_field_errors": ["_type names unknown resource types: Nonsense."]},
        ),
        (
            {"client_id": "A", "level": "group", "group_id": "nope"},
            {"non_field_errors": ["Group/nope does not exist."]},
        ),
        (
            {"client_id": "A", "level": "system", "since": "2999-01-01T00:00:00Z"},
            {
                "non_field_errors": [
                    "_since '2999-01-01T00:00:00+00:00' is in the future (more than 60 "
                    "seconds ahead of this server's clock)."
                ]
            },
        ),
        (
            {"client_id": "A", "level": "system", "types": "Patient"},
            {"types": ['Expected a list of items but got type "str".']},
        ),
    ],
)
def test_bad_launch_input_gets_400_with_field_errors(api_as, client_a, store, fields, errors):
    if fields.get("client_id") == "A":
        fields["client_id"] = client_a.backend_client.client_id
    response = (
        launch(api_as("operator"), **fields)
        if "client_id" in fields
        else api_as("operator").post("/api/v1/exports/launch", fields)
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["errors"] == errors
    assert (body["status"], body["code"]) == (400, "invalid")
    assert not ExportJob.objects.exists()


@pytest.mark.django_db
def test_launch_for_a_disabled_client_is_refused(api_as, client_a, store):
    disable_client(client_id=client_a.backend_client.client_id, actor=None)
    response = launch(api_as("operator"), client_a.backend_client.client_id, level="system")
    assert response.status_code == 400
    assert response.json()["errors"] == {"client_id": ["No active client has this id."]}


@pytest.mark.django_db
def test_launch_is_limited_by_the_clients_scopes(api_as, make_fhir_client, jwk_b, store):
    narrow = make_fhir_client(jwk_b, name="narrow", scopes="system/Patient.read")
    response = launch(
        api_as("operator"),
        narrow.backend_client.client_id,
        level="system",
        types=["Patient", "Observation"],
    )
    assert response.status_code == 201
    job = response.json()
    assert job["types"] == ["Patient"]
    assert any("Observation" in warning for warning in job["warnings"])


@pytest.mark.django_db
def test_launch_beyond_the_clients_concurrency_limit_gets_429(api_as, client_a, store, settings):
    settings.BULKOPS_MAX_CONCURRENT_EXPORTS = 1
    operator = api_as("operator")
    assert launch(operator, client_a.backend_client.client_id, level="system").status_code == 201
    response = launch(operator, client_a.backend_client.client_id, level="system")
    assert response.status_code == 429
    assert response.json()["status"] == 429
    assert response.json()["code"] == "throttled"
    assert "Retry-After" in response


@pytest.mark.django_db
def test_export_list_filters_and_pages_by_cursor(api_as, client_a, client_b, store):
    operator = api_as("operator")
    for fhir_client in (client_a, client_a, client_b):
        launch(operator, fhir_client.backend_client.client_id, level="system")
    mine = operator.get("/api/v1/exports/", client_id=client_a.backend_client.client_id).json()
    assert len(mine["results"]) == 2
    page = operator.get("/api/v1/exports/", page_size=2).json()
    assert len(page["results"]) == 2 and page["next"]
    rest = operator.http.get(page["next"], headers=operator.headers).json()
    assert len(rest["results"]) == 1 and rest["next"] is None
    seen = {job["uuid"] for job in page["results"] + rest["results"]}
    assert len(seen) == 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [({"status": "bogus"}, "status"), ({"since": "yesterday"}, "since")],
)
def test_bad_filters_get_400_with_field_errors(api_as, params, field):
    response = api_as("auditor").get("/api/v1/exports/", **params)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]


@pytest.mark.django_db
def test_unknown_export_and_file_answer_404_in_the_error_shape(api_as):
    auditor = api_as("auditor")
    missing = "00000000-0000-4000-8000-000000000000"
    for path in (f"/api/v1/exports/{missing}", f"/api/v1/files/{missing}/preview"):
        response = auditor.get(path)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


@pytest.mark.django_db
def test_preview_line_count_is_bounded(api_as):
    response = api_as("auditor").get(
        "/api/v1/files/00000000-0000-4000-8000-000000000000/preview", lines=1000
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "lines": ["Ensure this value is less than or equal to 100."]
    }


def output_file(operator, client_id: str, resource_type: str, body: bytes, count: int):
    """An output file holding `body`, of a system export launched for `client_id`."""
    job = ExportJob.objects.get(uuid=launch(operator, client_id, level="system").json()["uuid"])
    key = f"{job.uuid}/{resource_type}-written.ndjson"
    with get_storage().open_writer(key) as writer:
        writer.write(body)
    return ExportFile.objects.create(
        job=job,
        kind=ExportFile.Kind.OUTPUT,
        resource_type=resource_type,
        storage_key=key,
        resource_count=count,
        size_bytes=len(body),
    )


@pytest.mark.django_db
def test_preview_never_reads_past_its_byte_budget(api_as, client_a, store):
    operator = api_as("operator")
    small = b'{"resourceType":"Patient","id":"a"}\n'
    huge = b'{"resourceType":"Patient","id":"b","text":"' + b"x" * (PREVIEW_MAX_BYTES + 10)
    client_id = client_a.backend_client.client_id
    file = output_file(operator, client_id, "Patient", small + huge + b'"}\n', 2)
    preview = operator.get(f"/api/v1/files/{file.uuid}/preview", lines=2).json()
    assert preview["lines"] == [{"resourceType": "Patient", "id": "a"}]
    assert preview["truncated"] is True


@pytest.mark.django_db
def test_preview_keeps_decimals_as_the_file_writes_them(api_as, client_a, store):
    """FHIR decimals carry their precision: the preview shows 11208.90, not 11208.9."""
    operator = api_as("operator")
    line = (
        b'{"resourceType":"Observation","id":"o","valueQuantity":'
        b'{"value":11208.90,"unit":"\\u00b5g"},"component":[{"valueDecimal":1.000000000000000000001},'
        b'{"valueInteger":7},{"valueDecimal":1e2}]}'
    )
    client_id = client_a.backend_client.client_id
    file = output_file(operator, client_id, "Observation", line + b"\n", 1)
    response = operator.get(f"/api/v1/files/{file.uuid}/preview", lines=1)
    assert response.status_code == 200
    text = response.content.decode()
    assert '"value":11208.90,"unit":"µg"' in text
    assert '"valueDecimal":1.000000000000000000001' in text
    assert '{"valueInteger":7},{"valueDecimal":1e2}' in text
    assert response.json()["lines"][0]["id"] == "o"


@pytest.mark.django_db
def test_launch_takes_type_filters_and_until(api_as, client_a, store):
    response = launch(
        api_as("operator"),
        client_a.backend_client.client_id,
        level="group",
        group_id="g1",
        type_filters=["Observation?code=http://loinc.org|8867-4", "Condition?subject=p2"],
        until="2030-01-01T00:00:00Z",
    )
    assert response.status_code == 201, response.content
    job = response.json()
    assert job["parameters"]["_typeFilter"] == [
        "Observation?code=http://loinc.org|8867-4",
        "Condition?subject=p2",
    ]
    assert job["parameters"]["_until"] == "2030-01-01T00:00:00+00:00"
    assert "_typeFilter=Observation%3Fcode%3Dhttp%3A%2F%2Floinc.org%7C8867-4" in job["request_url"]


@pytest.mark.django_db
def test_a_filter_that_cannot_be_applied_is_a_field_error_unless_lenient(api_as, client_a, store):
    operator = api_as("operator")
    fields = {
        "level": "system",
        "types": ["Patient", "Observation"],
        "type_filters": ["Observation?_sort=date", "Condition?code=1", "Observation?code=1"],
    }
    response = launch(operator, client_a.backend_client.client_id, **fields)
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "type_filters": [
            "The _typeFilter 'Observation?_sort=date' cannot be applied: _sort is a result "
            "parameter: it shapes results, selects nothing.",
            "The _typeFilter 'Condition?code=1' cannot be applied: _type does not ask for "
            "Condition, so nothing would be filtered.",
        ]
    }
    assert not ExportJob.objects.exists()
    lenient = launch(operator, client_a.backend_client.client_id, lenient=True, **fields)
    assert lenient.status_code == 201
    job = lenient.json()
    assert job["parameters"]["_typeFilter"] == ["Observation?code=1"]
    assert [w.split(":")[0] for w in job["warnings"]] == [
        "The _typeFilter 'Observation?_sort=date' cannot be applied",
        "The _typeFilter 'Condition?code=1' cannot be applied",
    ]


@pytest.mark.django_db
def test_launch_of_a_bulk_data_4_export_organised_with_partial_manifests(api_as, client_a, store):
    fields = {
        "level": "group", "group_id": "g1", "types": ["Patient", "Condition"],
        "bulk_version": "4.0.0", "organize_output_by": "Patient",
        "allow_partial_manifests": True,
    }  # fmt: skip
    assert launch(api_as("auditor"), client_a.backend_client.client_id, **fields).status_code == 403
    assert not ExportJob.objects.exists()

    response = launch(api_as("operator"), client_a.backend_client.client_id, **fields)
    assert response.status_code == 201, response.content
    job = response.json()
    assert job["bulk_version"] == "4.0.0"
    assert job["parameters"]["organizeOutputBy"] == "Patient"
    assert job["parameters"]["allowPartialManifests"] is True
    assert job["request_url"] == (
        "http://testserver/fhir/Group/g1/$export-v4?_type=Patient&_type=Condition"
        "&organizeOutputBy=Patient&allowPartialManifests=true"
    )


@pytest.mark.django_db
def test_bulk_data_4_options_need_version_4(api_as, client_a, store):
    response = launch(
        api_as("operator"), client_a.backend_client.client_id,
        level="system", organize_output_by="Patient",
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "organize_output_by": ["A Bulk Data 4.0.0 option: give bulk_version 4.0.0."]
    }
    assert not ExportJob.objects.exists()
