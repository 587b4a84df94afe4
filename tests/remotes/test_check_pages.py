"""Server check pages: who may read and start runs, the evidence shown (escaped), and a
run against this bulkops itself started from the console and carried out over HTTP."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from accounts.models import AuditEvent, BackendClient
from bulkops.signing_keys import generate_private_jwk
from remotes.models import RemoteServer, ServerCheck

READ_ALL = {"admin", "operator", "auditor"}
RUN = {"admin", "operator"}


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    """Operators are created per test; the real hasher's slowness buys nothing here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def finished_check(db) -> ServerCheck:
    server = RemoteServer(name="lab", base_url="https://lab.example/fhir", client_id="us")
    server.set_private_jwk(generate_private_jwk("ES384"))
    server.save()
    result = {
        "name": "delete", "group": "Delete", "status": "fail",
        "summary": "DELETE on the status URL answered 405, not 202. <script>",
        "exchanges": [{
            "method": "DELETE", "url": "https://lab.example/fhir/status/1", "status": 405,
            "request_headers": {"Authorization": "REDACTED"}, "response_headers": {},
            "seconds": 0.01,
        }],
        "excerpts": [{"label": "DELETE answer (405)", "text": "{\"resourceType\": \"OO\"}"}],
    }  # fmt: skip
    return ServerCheck.objects.create(
        server=server, status="fail", results=[result], finished_at=timezone.now()
    )


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["admin", "operator", "auditor", None])
def test_check_pages_answer_by_role(console_client, finished_check, role) -> None:
    browser = console_client(role)
    base = f"/remotes/lab/checks/{finished_check.pk}"
    for url in ("/remotes/lab/checks/", f"{base}/", f"{base}/results/"):
        assert browser.get(url).status_code == (200 if role in READ_ALL else 403), url
    started = browser.post("/remotes/lab/checks/")
    assert started.status_code == (302 if role in RUN else 403)
    assert ServerCheck.objects.count() == (2 if role in RUN else 1)
    # Checking this bulkops registers a backend client here: admins only.
    assert browser.post("/remotes/self-check/").status_code == (302 if role == "admin" else 403)
    assert RemoteServer.objects.filter(name="this-bulkops").exists() == (role == "admin")
    assert BackendClient.objects.exists() == (role == "admin")


@pytest.mark.django_db
def test_a_started_check_is_audited_and_opens_its_page(console_client, finished_check) -> None:
    response = console_client("operator").post("/remotes/lab/checks/")
    check = ServerCheck.objects.exclude(pk=finished_check.pk).get()
    assert response["Location"] == f"/remotes/lab/checks/{check.pk}/"
    assert check.requested_by.username == "operator-user"
    event = AuditEvent.objects.get(action="remote.check.started")
    assert (event.actor, event.details) == ("operator-user", {"remote": "lab", "check": check.pk})


@pytest.mark.django_db
def test_results_show_evidence_escaped(console_client, finished_check) -> None:
    page = console_client("auditor").get(f"/remotes/lab/checks/{finished_check.pk}/")
    html = page.content.decode()
    assert 'data-check="delete"' in html
    assert "DELETE https://lab.example/fhir/status/1 → 405" in html
    assert "answered 405, not 202. &lt;script&gt;" in html
    assert "not 202. <script>" not in html
    assert "hx-get" not in html  # a finished run does not poll
    listing = console_client("admin").get("/remotes/lab/checks/").content.decode()
    assert f'href="/remotes/lab/checks/{finished_check.pk}/"' in listing
    assert "badge-fail" in listing


@pytest.mark.django_db
def test_a_running_check_polls_and_reloads_once_finished(console_client, finished_check) -> None:
    browser = console_client("auditor")
    running = ServerCheck.objects.create(server=finished_check.server, status="running")
    fragment = f"/remotes/lab/checks/{running.pk}/results/"
    assert f'hx-get="{fragment}"' in browser.get(fragment).content.decode()
    running.finished_at = timezone.now()
    running.save()
    assert browser.get(fragment, HTTP_HX_REQUEST="true")["HX-Refresh"] == "true"


@pytest.mark.django_db
def test_the_self_server_is_created_once(console_client) -> None:
    browser = console_client("admin")
    for _ in range(2):
        assert browser.post("/remotes/self-check/").status_code == 302
    server = RemoteServer.objects.get(name="this-bulkops")
    assert server.base_url == "http://testserver/fhir"
    assert ServerCheck.objects.filter(server=server).count() == 2
    assert BackendClient.objects.filter(client_id=server.client_id).count() == 1
    assert AuditEvent.objects.filter(action="remote.self_server.created").count() == 1


@pytest.mark.django_db
def test_unknown_server_or_check_is_404(console_client, finished_check) -> None:
    browser = console_client("admin")
    assert browser.get("/remotes/nowhere/checks/").status_code == 404
    assert browser.get(f"/remotes/nowhere/checks/{finished_check.pk}/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_checking_this_bulkops_from_the_console(
    console_client, live_server, celery_worker, store
) -> None:
    browser = console_client("admin")
    host = live_server.url.removeprefix("http://")

    response = browser.post("/remotes/self-check/", HTTP_HOST=host)

    server = RemoteServer.objects.get(name="this-bulkops")
    assert server.base_url == f"{live_server.url}/fhir"
    assert BackendClient.objects.get(client_id=server.client_id).name == "bulkops self-check"
    check = ServerCheck.objects.get(server=server)
    assert response["Location"] == f"/remotes/this-bulkops/checks/{check.pk}/"
    deadline = time.monotonic() + 120
    while not check.is_finished and time.monotonic() < deadline:
        time.sleep(0.5)
        check.refresh_from_db()
    assert check.error == ""
    assert {r["name"]: r["summary"] for r in check.results if r["status"] == "fail"} == {}
    assert check.status in ("pass", "warn")
    statuses = {r["name"]: r["status"] for r in check.results}
    assert statuses["ndjson-files"] == statuses["delete"] == "pass"
    v4 = ("v4-get-refused", "v4-kickoff-accepted", "v4-manifest-pages", "v4-organized-output",
          "v4-separate-export-status")  # fmt: skip
    assert {name: statuses[name] for name in v4} == dict.fromkeys(v4, "pass")
    page = browser.get(f"/remotes/this-bulkops/checks/{check.pk}/").content.decode()
    assert 'data-check="ndjson-files"' in page
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"client.registered", "remote.self_server.created", "remote.check.started",
            "remote.check.finished"} <= actions  # fmt: skip


def test_a_check_whose_worker_died_ends_as_an_error_on_its_page(
    console_client, finished_check, caplog
):
    import logging
    from datetime import timedelta

    from remotes.server_checks import fail_stalled_checks

    stalled = ServerCheck.objects.create(server=finished_check.server, status="running")
    recent = ServerCheck.objects.create(server=finished_check.server, status="queued")
    ServerCheck.objects.filter(pk=stalled.pk).update(created_at=timezone.now() - timedelta(hours=1))

    with caplog.at_level(logging.INFO, logger="remotes.server_checks"):
        assert fail_stalled_checks(timezone.now()) == 1
    assert caplog.messages == ["stalled server checks ended as errors: 1"]

    stalled.refresh_from_db()
    recent.refresh_from_db()
    assert (stalled.status, recent.status) == ("error", "queued")
    page = console_client("auditor").get(f"/remotes/lab/checks/{stalled.pk}/").content.decode()
    assert "the worker running it stopped" in page
