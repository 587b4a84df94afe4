"""Every look at exported patient data leaves one audit line: the console preview (each
page, page size, filter, htmx request), the operator API preview, downloads, and the
remote issues shown on a job page, for every role that may look. The audit trail shows
an auditor who read which part of which file, and never the resources themselves."""

from __future__ import annotations

import html
import json
from typing import Any

import pytest

from accounts.models import AuditEvent
from bulkops.signing_keys import generate_private_jwk
from exports.models import ExportFile
from remotes.models import RemoteDownload, RemoteExport, RemoteServer
from tests.api.conftest import api_as  # noqa: F401 - fixture
from tests.exports.files import finished_job, write_file

pytestmark = pytest.mark.django_db

ROLES = ("admin", "operator", "auditor")
PRIVATE = "diagnosed with something private"
LINES = [
    json.dumps(
        {
            "resourceType": "Observation",
            "id": f"o{n}",
            "subject": {"reference": f"Patient/p{n % 2}"},
            "note": [{"text": PRIVATE if n == 3 else "routine"}],
        },
        separators=(",", ":"),
    ).encode()
    + b"\n"
    for n in range(1, 7)
]
SECOND_LINE = len(LINES[0])  # byte offset of line 2
END = sum(map(len, LINES))


@pytest.fixture
def file(settings: Any, tmp_path: Any, rsa_key: Any) -> ExportFile:
    """A finished job's Observation file of six lines in local storage."""
    settings.BULKOPS_STORAGE = "local"
    settings.BULKOPS_LOCAL_STORAGE_DIR = tmp_path
    return write_file(finished_job(rsa_key), ExportFile.Kind.OUTPUT, "Observation", LINES)


def take_read(file: ExportFile, actor: str, action: str = "export.preview") -> dict[str, Any]:
    """The single audit event the last view wrote (then removed, so the next view's
    stands alone), checked to name the reader, the file and its job; returns what it
    says was read."""
    events = list(AuditEvent.objects.filter(action__startswith="export."))
    assert [(e.action, e.actor_type, e.actor) for e in events] == [(action, "operator", actor)]
    details = dict(events[0].details)
    assert details.pop("job") == str(file.job.uuid)
    assert details.pop("file") == file.storage_key
    assert details.pop("file_id") == str(file.uuid)
    assert details.pop("type") == file.resource_type
    assert PRIVATE not in json.dumps(details)  # what was asked for, never what was shown
    events[0].delete()
    return details


@pytest.mark.parametrize("role", ROLES)
def test_each_preview_page_writes_one_audit_entry_naming_the_lines_shown(
    console_client, file, role
):
    browser = console_client(role)
    reader = f"{role}-user"
    url = f"/files/{file.uuid}/"

    assert browser.get(url).status_code == 200
    assert take_read(file, reader) == {"lines": [1, 6], "offset": 0}

    assert browser.get(url, {"n": 2}).status_code == 200  # lines per page
    assert take_read(file, reader) == {"lines": [1, 2], "offset": 0}

    page = browser.get(url, {"offset": SECOND_LINE, "line": 2, "n": 2})  # "Next 2 lines"
    assert "Lines 2–3 of 6" in page.content.decode()
    assert take_read(file, reader) == {"lines": [2, 3], "offset": SECOND_LINE}

    filtered = browser.get(url, {"q": "PRIVATE", "n": 4}).content.decode()
    assert "1 match in the whole file" in filtered
    assert take_read(file, reader) == {  # a search reads the whole file
        "lines": [1, 6],
        "offset": 0,
        "filter": "PRIVATE",
        "matches": 1,
    }

    htmx = browser.get(url, {"offset": SECOND_LINE, "line": 2}, headers={"HX-Request": "true"})
    assert htmx.status_code == 200
    assert take_read(file, reader) == {"lines": [2, 6], "offset": SECOND_LINE}

    browser.get(url, {"offset": END, "line": 7})  # past the last line: nothing shown
    assert take_read(file, reader) == {"lines": [], "offset": END}


@pytest.mark.parametrize("role", ROLES)
def test_api_preview_writes_one_audit_entry_per_call(api_as, file, role):  # noqa: F811
    api = api_as(role)
    response = api.get(f"/api/v1/files/{file.uuid}/preview", lines=2)
    assert response.status_code == 200
    assert len(response.json()["lines"]) == 2
    assert take_read(file, f"{role}-api") == {"lines": [1, 2], "offset": 0}
    api.get(f"/api/v1/files/{file.uuid}/preview", lines=50)
    assert take_read(file, f"{role}-api") == {"lines": [1, 6], "offset": 0}


@pytest.mark.parametrize("role", ["admin", "operator"])
def test_console_download_is_audited_like_every_other_read(console_client, file, role):
    response = console_client(role).get(f"/files/{file.uuid}/download/")
    assert b"".join(response.streaming_content) == b"".join(LINES)
    assert take_read(file, f"{role}-user", action="export.download") == {}


def test_refused_and_unknown_reads_write_nothing(console_client, file):
    assert console_client("auditor").get(f"/files/{file.uuid}/download/").status_code == 403
    missing = "00000000-0000-4000-8000-000000000000"
    assert console_client("operator").get(f"/files/{missing}/").status_code == 404
    assert not AuditEvent.objects.filter(action__startswith="export.").exists()


def test_audit_trail_shows_an_auditor_who_read_which_lines_with_links(console_client, file):
    hostile = '<img src=x onerror="alert(1)">'
    console_client("operator").get(
        f"/files/{file.uuid}/", {"offset": SECOND_LINE, "line": 2, "n": 3, "q": hostile}
    )
    auditor = console_client("auditor")
    page = auditor.get("/audit/", {"action": "export.preview"}).content.decode()
    row = page.split("<tbody>")[1].split("</tr>")[0]
    assert "operator-user" in row and "export.preview" in row
    assert f'href="/exports/{file.job.uuid}/"' in row
    assert "Observation file" in row
    searched = f"searched lines 2–6 from byte {SECOND_LINE} for “{hostile}” (0 matching)"
    assert html.escape(searched) in row
    assert hostile not in page  # operator input, escaped on display
    link = html.unescape(row.split('<a href="')[2].split('"')[0])
    assert link.startswith(f"/files/{file.uuid}/?")
    # The link reopens the page that was read (and that look is on the record too).
    again = auditor.get(link).content.decode()
    assert "No match" in again and "in lines 2–6 of 6" in again
    assert AuditEvent.objects.filter(action="export.preview", actor="auditor-user").exists()


def test_a_remote_job_page_showing_error_file_lines_audits_each_view(console_client, file):
    """A remote export's job page shows its error files' issues, raw: a read of them."""
    job = file.job
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": "Patient/p9 odd"}],
    }
    error_file = write_file(
        job, ExportFile.Kind.ERROR, "OperationOutcome", [json.dumps(outcome).encode() + b"\n"]
    )
    server = RemoteServer(name="lab", base_url="https://fhir.invalid/r4", client_id="us")
    server.set_private_jwk(generate_private_jwk("ES384"))
    server.save()
    export = RemoteExport.objects.create(
        job=job,
        server=server,
        kickoff_path="/$export",
        phase=RemoteExport.Phase.DONE,
        outcomes=[{"severity": "error", "plain": "Error.", "raw": json.dumps(outcome)}],
    )
    RemoteDownload.objects.create(
        export=export,
        kind="error",
        resource_type="OperationOutcome",
        url="https://fhir.invalid/e",
        storage_key=error_file.storage_key,
        status=RemoteDownload.Status.DONE,
        file=error_file,
    )
    browsers = {role: console_client(role) for role in ROLES}
    for role, browser in browsers.items():
        page = browser.get(f"/exports/{job.uuid}/").content.decode()
        assert "Patient/p9 odd" in page
        assert take_read(error_file, f"{role}-user") == {}
    # The polled progress fragment shows no file contents and writes nothing.
    browsers["auditor"].get(f"/exports/{job.uuid}/progress/")
    assert not AuditEvent.objects.filter(action__startswith="export.").exists()


def test_a_local_job_page_shows_no_file_contents_and_writes_nothing(console_client, file):
    page = console_client("auditor").get(f"/exports/{file.job.uuid}/").content.decode()
    assert f"/files/{file.uuid}/" in page and PRIVATE not in page
    assert not AuditEvent.objects.filter(action__startswith="export.").exists()
