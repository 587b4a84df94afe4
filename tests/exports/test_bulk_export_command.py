"""`manage.py bulk_export`, the reference client, against a live server and worker."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.services import register_client
from bulkops.signing_keys import generate_private_jwk, public_jwks
from exports.models import ExportJob

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture
def demo_key(tmp_path):
    jwk = generate_private_jwk("ES384")
    path = tmp_path / "key.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    return jwk, path


def test_bulk_export_downloads_every_file_and_prints_a_summary(
    live_server, store, demo_key, tmp_path
):
    jwk, key_path = demo_key
    client = register_client(
        name="cli", jwks=public_jwks(jwk), scopes="system/Patient.read system/Condition.read"
    )
    out = StringIO()
    call_command(
        "bulk_export",
        base_url=f"{live_server.url}/fhir",
        client_id=client.client_id,
        key=str(key_path),
        group="g1",
        types=["Patient", "Condition", "Observation"],
        scope="system/Patient.read system/Condition.read",
        out=tmp_path / "out",
        stdout=out,
    )
    output = out.getvalue()
    assert "Patient" in output and "Condition" in output
    summary = {
        line.split()[0]: line.split()[1:]
        for line in output.splitlines()
        if line.split() and line.split()[0] in ("Patient", "Condition", "total")
    }
    assert summary == {"Patient": ["1", "2"], "Condition": ["1", "2"], "total": ["2", "4"]}
    assert "warning: Observation was requested but this client's token only grants" in output
    downloaded = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(downloaded) == 3  # two output files and the warnings file


def test_bulk_export_reports_a_refusal_in_words(live_server, store, demo_key, tmp_path):
    jwk, key_path = demo_key
    client = register_client(name="cli", jwks=public_jwks(jwk), scopes="system/*.read")
    with pytest.raises(CommandError, match="kick-off refused: HTTP 404: Group/nope does not exist"):
        call_command(
            "bulk_export",
            base_url=f"{live_server.url}/fhir",
            client_id=client.client_id,
            key=str(key_path),
            group="nope",
            out=tmp_path / "out",
            stdout=StringIO(),
        )


def export_from_stub(server, demo_key, tmp_path) -> str:
    """What `bulk_export` prints for a whole export from a stub server."""
    from tests.remotes.stub_server import serve

    out = StringIO()
    with serve(server) as stub:
        call_command(
            "bulk_export",
            base_url=stub.base_url,
            token_url=f"{stub.base_url}/token",
            client_id="us",
            key=str(demo_key[1]),
            out=tmp_path / "out",
            stdout=out,
        )
    return out.getvalue()


def test_a_hostile_error_file_is_named_in_the_warnings(demo_key, tmp_path):
    """The error files of another server are untrusted input: a line nested 5,000 deep
    (or no OperationOutcome at all) is named as such, the other lines' issues are kept,
    and the export still ends with its summary instead of a traceback."""
    from tests.remotes.stub_server import FaultyExportServer

    kept = {"resourceType": "OperationOutcome", "issue": [{"diagnostics": "kept"}]}
    error_body = b"[" * 5000 + b"\n" + b"[1]\n" + json.dumps(kept).encode() + b"\n"
    output = export_from_stub(FaultyExportServer(error_body=error_body), demo_key, tmp_path)
    warnings = [line for line in output.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: line 1 of error-0000-OperationOutcome.ndjson is not an OperationOutcome",
        "warning: line 2 of error-0000-OperationOutcome.ndjson is not an OperationOutcome",
        "warning: kept",
    ]


def test_bulk_export_passes_type_filters_and_until(live_server, store, demo_key, tmp_path):
    """The store's Conditions are p1-c, p2-c and p3-c; the filters keep p2's (by
    subject) and p3's (by id), and every Patient comes out whole."""
    jwk, key_path = demo_key
    client = register_client(name="cli", jwks=public_jwks(jwk), scopes="system/*.read")
    out = StringIO()
    call_command(
        "bulk_export",
        base_url=f"{live_server.url}/fhir",
        client_id=client.client_id,
        key=str(key_path),
        types=["Patient", "Condition"],
        type_filters=["Condition?subject=Patient/p2", "Condition?_id=p3-c"],
        until="2099-01-01T00:00:00Z",
        out=tmp_path / "out",
        stdout=out,
    )
    conditions = [
        json.loads(line)["id"]
        for path in (tmp_path / "out").glob("output-*-Condition.ndjson")
        for line in path.read_text().splitlines()
    ]
    assert sorted(conditions) == ["p2-c", "p3-c"]
    summary = [line.split() for line in out.getvalue().splitlines()]
    assert ["Patient", "1", "3"] in summary and ["Condition", "1", "2"] in summary


def test_bulk_export_sends_elements_patients_and_lenient_handling(
    live_server, store, demo_key, tmp_path
):
    """--patient goes in a POST Parameters body, --elements subsets, and --lenient lets
    the server drop the unknown type with a warning instead of refusing the kick-off."""
    jwk, key_path = demo_key
    client = register_client(name="cli", jwks=public_jwks(jwk), scopes="system/*.read")
    out = StringIO()
    call_command(
        "bulk_export",
        base_url=f"{live_server.url}/fhir",
        client_id=client.client_id,
        key=str(key_path),
        group="g1",
        patients=["p2"],
        types=["Patient", "Banana"],
        elements=["Patient.gender"],
        lenient=True,
        out=tmp_path / "out",
        stdout=out,
    )
    (patient,) = [
        json.loads(line)
        for path in (tmp_path / "out").glob("output-*-Patient.ndjson")
        for line in path.read_text().splitlines()
    ]
    assert (patient["id"], patient["gender"], "name" in patient) == ("p2", "female", False)
    output = out.getvalue()
    assert ["Patient", "1", "1"] in [line.split() for line in output.splitlines()]
    assert "warning: _type names unknown resource types: Banana." in output
    job = ExportJob.objects.get()
    assert job.parameters["patient"] == ["Patient/p2"]
    assert job.request_url == f"{live_server.url}/fhir/Group/g1/$export"  # a POST

    with pytest.raises(CommandError, match="unknown resource types: Banana"):
        call_command(
            "bulk_export",
            base_url=f"{live_server.url}/fhir",
            client_id=client.client_id,
            key=str(key_path),
            types=["Patient", "Banana"],
            out=tmp_path / "strict",
            stdout=StringIO(),
        )


def test_bulk_export_prints_progress_as_plain_lines_when_not_a_terminal(demo_key, tmp_path):
    from tests.remotes.stub_server import FaultyExportServer

    polls = [
        (202, {"X-Progress": "10% - 1 of 2 types", "Retry-After": "0"}),
        (202, {"X-Progress": "10% - 1 of 2 types", "Retry-After": "0"}),
        (202, {"X-Progress": "60% - 2 of 2 types", "Retry-After": "0"}),
    ]
    output = export_from_stub(FaultyExportServer(polls=polls), demo_key, tmp_path)
    lines = output.splitlines()
    assert "\r" not in output
    assert [line for line in lines if line.startswith("progress:")] == [
        "progress: 10% - 1 of 2 types",
        "progress: 60% - 2 of 2 types",
    ]
    assert lines[lines.index("progress: 60% - 2 of 2 types") + 1] == (
        "Export complete; downloading files..."
    )
