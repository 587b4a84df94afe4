"""Remote server pages in the console: who may do what, keys generated or uploaded
(and never shown again), discovery, delete refused while an export runs, cancel."""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import AuditEvent
from exports.models import ExportJob
from remotes.models import RemoteExport, RemoteServer
from tests.remotes.conftest import form_data, make_server

READ_ALL = {"admin", "operator", "auditor"}
RUN = {"admin", "operator"}


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["admin", "operator", "auditor", None])
def test_each_remote_page_answers_each_role(console_client, stub_server, role):
    urls = {
        "/remotes/": READ_ALL,
        "/remotes/stub/": READ_ALL,
        "/remotes/stub/jwks.json": READ_ALL,
        "/remotes/new/": RUN,
        "/remotes/stub/edit/": RUN,
        "/remotes/stub/key/": RUN,
        "/remotes/stub/export/": RUN,
    }
    browser = console_client(role)
    for url, allowed in urls.items():
        assert browser.get(url).status_code == (200 if role in allowed else 403), (url, role)
    for url in ("/remotes/stub/discover/", "/remotes/stub/delete/"):
        if role not in RUN:
            assert browser.post(url).status_code == 403, (url, role)
    assert Client().get("/remotes/")["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
@pytest.mark.parametrize("algorithm", ["ES384", "RS384"])
def test_create_with_a_generated_key_shows_only_the_public_jwks(console_client, stub, algorithm):
    operator = console_client("operator")
    response = operator.post("/remotes/new/", form_data(stub.base_url, source=algorithm))
    assert response.status_code == 302, response.content
    server = RemoteServer.objects.get(name="hapi")
    assert server.key_algorithm == algorithm
    assert server.discovered_token_url == f"{stub.base_url}/token"  # discovered on save
    private = server.target().private_jwk

    page = operator.get("/remotes/hapi/").content.decode()
    assert f"{stub.base_url}/token (discovered)" in page
    assert server.kid in page and private["d"] not in page
    download = operator.get("/remotes/hapi/jwks.json")
    assert download["Content-Disposition"] == 'attachment; filename="hapi-jwks.json"'
    assert json.loads(download.content) == server.public_jwks
    assert "d" not in json.loads(download.content)["keys"][0]
    event = AuditEvent.objects.get(action="remote.created")
    assert event.actor == "operator-user" and private["d"] not in json.dumps(event.details)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["new", "self-check"])
def test_names_of_console_pages_are_refused_next_to_the_field(console_client, stub, name):
    """/remotes/new/ and /remotes/self-check/ are console pages: a server by that name
    could never be opened."""
    operator = console_client("operator")
    response = operator.post("/remotes/new/", form_data(stub.base_url, name=name, source="ES384"))
    assert response.status_code == 200
    assert f"&#x27;{name}&#x27; is reserved for the console" in response.content.decode()
    assert not RemoteServer.objects.exists()


@pytest.mark.django_db
def test_upload_errors_are_shown_next_to_the_field_and_nothing_is_saved(console_client, stub):
    operator = console_client("operator")
    response = operator.post(
        "/remotes/new/", form_data(stub.base_url, source="upload", private_jwks='{"keys": []}')
    )
    assert response.status_code == 200
    assert "The set holds no private key" in response.content.decode()
    assert not RemoteServer.objects.exists()


@pytest.mark.django_db
def test_uploaded_key_replaces_the_old_one(console_client, stub_server):
    from bulkops.signing_keys import generate_private_jwk

    new = generate_private_jwk("RS384")
    response = console_client("admin").post(
        "/remotes/stub/key/", {"source": "upload", "private_jwks": json.dumps({"keys": [new]})}
    )
    assert response.status_code == 302
    stub_server.refresh_from_db()
    assert stub_server.kid == new["kid"] and stub_server.target().private_jwk["d"] == new["d"]
    assert AuditEvent.objects.filter(action="remote.key_replaced").exists()


@pytest.mark.django_db
def test_discover_button_says_which_steps_failed(console_client, live_server, stub_server):
    stub_server.base_url = f"{live_server.url}/missing"
    stub_server.save()
    response = console_client("operator").post("/remotes/stub/discover/", follow=True)
    assert (
        "Token endpoint not found: no smart-configuration (HTTP 404) and no "
        "CapabilityStatement at /metadata (HTTP 404)."
    ) in response.content.decode()
    event = AuditEvent.objects.get(action="remote.discovered")
    assert event.actor == "operator-user" and event.details["error"].startswith("no smart-")


@pytest.mark.django_db
def test_delete_is_refused_while_an_export_runs(console_client, stub_server):
    job = ExportJob.objects.create(level="system", request_url="x", transaction_time=timezone.now())
    RemoteExport.objects.create(job=job, server=stub_server, kickoff_path="/$export")
    operator = console_client("operator")
    response = operator.post("/remotes/stub/delete/", follow=True)
    assert "stub has exports still running" in response.content.decode()
    assert RemoteServer.objects.filter(name="stub").exists()

    ExportJob.objects.filter(pk=job.pk).update(status=ExportJob.Status.COMPLETED)
    assert operator.post("/remotes/stub/delete/").status_code == 302
    assert (
        not RemoteServer.objects.exists()
        and not ExportJob.objects.filter(remote_export__isnull=False).exists()
    )


@pytest.mark.django_db
def test_delete_asks_first_and_the_confirmed_request_goes_to_the_list(console_client, stub_server):
    """The Delete button's confirmation is htmx's, so htmx must send the form: without
    hx-post the browser posted it straight away, never asking."""
    operator = console_client("operator")
    page = operator.get("/remotes/stub/").content.decode()
    form = page.split('action="/remotes/stub/delete/"')[1].split(">")[0]
    assert 'hx-post="/remotes/stub/delete/"' in form and 'hx-confirm="Delete stub' in form
    response = operator.post("/remotes/stub/delete/", headers={"HX-Request": "true"})
    assert response["HX-Redirect"] == "/remotes/"
    assert not RemoteServer.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_cancel_stops_polling_and_deletes_the_remote_job(console_client, stub, stub_server):
    stub.polls = [(202, {"X-Progress": "still going", "Retry-After": "1"})] * 60
    operator = console_client("operator")
    response = operator.post(
        "/remotes/stub/export/",
        {"level": "system", "output_format": "application/fhir+ndjson", "types": "Patient"},
    )
    job_uuid = response["Location"].split("/")[-2]
    deadline = time.monotonic() + 30
    while not RemoteExport.objects.filter(job__uuid=job_uuid, progress="still going").exists():
        assert time.monotonic() < deadline, "the remote export never started polling"
        time.sleep(0.1)

    operator.post(f"/exports/{job_uuid}/delete/")
    while ("DELETE", "/status") not in [(m, p) for m, p, _ in stub.requests]:
        assert time.monotonic() < deadline + 30, "the remote job was never deleted"
        time.sleep(0.1)
    time.sleep(1.5)  # a runner still polling would have polled again by now
    after_delete = stub.requests[[r[0] for r in stub.requests].index("DELETE") :]
    assert [m for m, _, _ in after_delete] == ["DELETE"]
    job = ExportJob.objects.get(uuid=job_uuid)
    assert job.status == ExportJob.Status.CANCELLED and not job.files.exists()
    assert RemoteExport.objects.get(job=job).remote_job_deleted is True


@pytest.mark.django_db
def test_remote_export_command_prints_progress_and_a_table(stub, remote_key):
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    make_server("stub", stub.base_url, "us", remote_key)
    out = StringIO()
    call_command("remote_export", "stub", "--system", "--type", "Patient", stdout=out)
    text = out.getvalue()
    assert "/$export?_type=Patient" in text and "  download" in text
    assert "output   Patient                          1         2" in text
    assert "Completed: 2 resources." in text

    stub.file_status = 500
    with pytest.raises(CommandError, match="Export failed: Downloading the files failed"):
        call_command("remote_export", "stub", "--system", stdout=StringIO())


@pytest.mark.django_db
def test_export_launch_page_offers_each_remote_server(console_client, stub_server):
    operator = console_client("operator")
    page = operator.get("/exports/new/").content.decode()
    assert '<a href="/remotes/stub/export/">Remote server stub</a>' in page
    form = operator.get("/remotes/stub/export/").content.decode()
    assert form.count('name="type_filters"') == 1 and 'name="patient"' in form
    assert 'name="client"' not in form


@pytest.mark.django_db
def test_launch_form_sends_each_type_filter_once_as_written(console_client, stub_server):
    """One _typeFilter field; its lines go to the remote once each, unjudged by bulkops'
    own engine (the remote decides: a chained search bulkops refuses may work there)."""
    lines = ["Patient?gender=female", "Observation?subject.name=peter"]
    response = console_client("operator").post(
        "/remotes/stub/export/",
        {"level": "system", "type_filters": "\n".join(lines),
         "output_format": "application/fhir+ndjson"},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()
    sent = RemoteExport.objects.get().kickoff_pairs
    assert [value for name, value in sent if name == "_typeFilter"] == lines


@pytest.mark.django_db
def test_launch_form_errors_stand_next_to_their_fields_and_start_nothing(
    console_client, stub_server
):
    stub_server.default_group_id = ""
    stub_server.save()
    response = console_client("operator").post(
        "/remotes/stub/export/",
        {"level": "group", "group_id": "", "patient": "ok-1 bad/id",
         "output_format": "application/fhir+ndjson"},
    )  # fmt: skip
    page = response.content.decode()
    assert response.status_code == 200
    assert "Choose the Group to export." in page and "Not FHIR ids: bad/id." in page
    assert not ExportJob.objects.exists()


@pytest.mark.django_db
def test_edit_keeps_the_key_and_rediscovers(console_client, stub, stub_server):
    kid = stub_server.kid
    response = console_client("admin").post(
        "/remotes/stub/edit/",
        form_data(stub.base_url, name="stub", client_id="renamed", verify_tls=""),
    )
    assert response.status_code == 302, response.content
    stub_server.refresh_from_db()
    assert (stub_server.client_id, stub_server.verify_tls, stub_server.kid) == (
        "renamed",
        False,
        kid,
    )
    assert stub_server.discovered_token_url == f"{stub.base_url}/token"


@pytest.mark.django_db
def test_nav_marks_only_remotes_as_the_current_section(console_client, stub_server):
    auditor = console_client("auditor")
    for url in ("/remotes/", "/remotes/stub/"):
        page = auditor.get(url).content.decode()
        assert page.count('aria-current="page"') == 1, url
        assert 'href="/remotes/" aria-current="page">Remotes</a>' in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "may_run", "may_check_self"),
    [("admin", True, True), ("operator", True, False), ("auditor", False, False)],
)
def test_check_buttons_start_runs_for_those_who_may(
    console_client, stub_server, role, may_run, may_check_self
):
    browser = console_client(role)
    detail = browser.get("/remotes/stub/").content.decode()
    listing = browser.get("/remotes/").content.decode()

    assert 'href="/remotes/stub/checks/"' in detail  # past runs: everyone who reads
    assert ('action="/remotes/stub/checks/"' in detail) is may_run
    # "Check this bulkops" registers a backend client: shown only to those it will serve.
    assert ('action="/remotes/self-check/"' in listing) is may_check_self
    if may_run:
        started = browser.post("/remotes/stub/checks/")
        assert started.status_code == 302
        assert started["Location"].startswith("/remotes/stub/checks/")


@pytest.mark.django_db
def test_a_server_can_be_added_before_it_issued_our_client_id(console_client, stub):
    operator = console_client("operator")
    response = operator.post(
        "/remotes/new/", form_data(stub.base_url, client_id="", source="ES384")
    )
    assert response.status_code == 302, response.content
    server = RemoteServer.objects.get(name="hapi")
    page = operator.get("/remotes/hapi/").content.decode()
    steps = page.split('id="next-steps"')[1].split("</section>")[0]
    assert f"/jwks/{server.jwks_id}.json" in steps and f"{stub.base_url}/token" in steps
    assert 'href="/remotes/hapi/edit/"' in steps and "not set yet" in page

    launch = operator.post(
        "/remotes/hapi/export/",
        {"level": "system", "output_format": "application/fhir+ndjson", "types": "Patient"},
    )
    assert "hapi has no client_id for us yet" in launch.content.decode()
    assert not ExportJob.objects.exists()

    operator.post("/remotes/hapi/edit/", form_data(stub.base_url, client_id="issued-later"))
    assert 'id="next-steps"' not in operator.get("/remotes/hapi/").content.decode()


@pytest.mark.django_db
def test_a_check_that_found_the_token_endpoint_shows_it(console_client, remote_key):
    from remotes.models import ServerCheck
    from remotes.server_checks import run_check
    from tests.remotes.stub_server import ReferenceLikeServer, serve

    with serve(ReferenceLikeServer()) as peer:
        server = make_server("peer", peer.base_url, peer.client_id, remote_key)
        assert "not found" in console_client("auditor").get("/remotes/peer/").content.decode()
        run_check(check=ServerCheck.objects.create(server=server))
    page = console_client("operator").get("/remotes/peer/").content.decode()
    assert f"{peer.base_url}/token (discovered)" in page


@pytest.mark.django_db
def test_a_finished_pull_is_labelled_by_its_server_and_shows_no_stale_progress(
    console_client, stub, stub_server
):
    from tests.remotes.conftest import run_in_process

    stub.polls = [(202, {"X-Progress": "0% planning", "Retry-After": "1"})]
    job = run_in_process(stub_server)
    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason
    assert RemoteExport.objects.get(job=job).progress == "0% planning"  # as last sent
    browser = console_client("auditor")
    page = browser.get(f"/exports/{job.uuid}/").content.decode()
    assert 'id="remote-progress"' not in page and "100% - " in page
    assert "<dt>Client</dt><dd>from stub</dd>" in page
    rows = browser.get("/exports/").content.decode().split("<tbody>")[1]
    assert '<span class="job-source">from stub</span>' in rows
