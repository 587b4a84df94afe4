"""Our access token for a remote goes only to the origin it was issued for.

A remote export or server check asks the token endpoint for a token and sends it to the
FHIR base URL. An operator who points a remote's base URL at their own host, whose
smart-configuration (or the form's token endpoint) names a real server's token
endpoint, must not receive that server's tokens: a token endpoint on another origin is
used only once an admin confirmed it for exactly that base URL. Also here: the
self-check remote is the admins', status URLs and manifest files get the token only on
the server's origin (files only when requiresAccessToken is true).
"""

from __future__ import annotations

import time

import pytest

from accounts.models import TOKEN_REQUEST, AuditEvent
from accounts.services import register_client
from bulkops.outbound import same_origin
from bulkops.signing_keys import public_jwks
from exports.models import ExportJob
from remotes.models import RemoteServer, ServerCheck
from remotes.token_destination import token_destination_problem
from tests.exports.conftest import wait_for_job
from tests.remotes.conftest import form_data, make_server, run_in_process
from tests.remotes.stub_server import STUB_TOKEN, FaultyExportServer, TokenCollector, serve


@pytest.fixture(autouse=True)
def loopback_peers_allowed(settings) -> None:
    """Every peer here listens on 127.0.0.1, which outbound fetches refuse by default."""
    settings.BULKOPS_ALLOW_PRIVATE_FETCH = True


def refusal(token_url: str, origin: str) -> str:
    """The sentence a job, a check and the remote's page show (remotes.token_destination)."""
    return (
        f"bulkops will not request a token at {token_url}: it is not on the origin of the "
        f"FHIR base URL ({origin}), to which the token would be sent, and no admin has "
        "confirmed it for that base URL. If that endpoint really issues this FHIR server's "
        "tokens, an admin can confirm it on the remote server's page."
    )


def lab_form(base_url: str, **extra: str) -> dict[str, str]:
    return form_data(base_url, **{"name": "lab", "client_id": "us", **extra})


# --- the rule --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "other", "same"),
    [
        ("https://fhir.example/r4", "https://FHIR.example:443/auth/token", True),
        ("http://127.0.0.1:8000/fhir", "http://127.0.0.1:8000/auth/token", True),
        ("http://127.0.0.1:8000/fhir", "http://127.0.0.1:8001/auth/token", False),
        ("https://fhir.example/r4", "http://fhir.example/token", False),
        ("https://fhir.example/r4", "https://auth.fhir.example/token", False),
        ("https://evil.example/fhir", "https://fhir.example@evil.example/token", True),
        ("https://fhir.example/r4", "https://fhir.example@evil.example/token", False),
        ("https://fhir.example/r4", "ftp://fhir.example/token", False),
        ("https://fhir.example/r4", "https://fhir.example:99999/token", False),
    ],
)
def test_origins_are_scheme_host_and_port(url, other, same) -> None:
    assert same_origin(other, url) is same


def test_a_token_endpoint_elsewhere_needs_the_exact_confirmed_url() -> None:
    base, token = "https://fhir.example/r4", "https://auth.example/token"
    assert token_destination_problem(base, token) == refusal(token, "https://fhir.example")
    assert token_destination_problem(base, token, confirmed_token_url=token) == ""
    assert token_destination_problem(base, f"{token}2", confirmed_token_url=token) != ""
    assert token_destination_problem(base, "https://fhir.example/auth/token") == ""


# --- the attack: an operator's base URL, a real server's token endpoint ------------------


@pytest.fixture
def lab(live_server, remote_key) -> RemoteServer:
    """A remote whose key is a backend client of the bulkops at live_server, standing in
    for any real server: the tokens its token endpoint issues are real ones."""
    client = register_client(name="lab key", jwks=public_jwks(remote_key), scopes="system/*.read")
    return make_server("lab", f"{live_server.url}/fhir", client.client_id, remote_key)


@pytest.fixture
def attacker(live_server):
    with serve(TokenCollector(token_endpoint=f"{live_server.url}/auth/token")) as server:
        yield server


def point_lab_at(operator, lab: RemoteServer, base_url: str, token_url: str) -> None:
    response = operator.post(
        "/remotes/lab/edit/", lab_form(base_url, client_id=lab.client_id, token_url=token_url)
    )
    assert response.status_code == 302, response.content


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
@pytest.mark.parametrize("typed", [False, True], ids=["discovered", "typed-in-the-form"])
def test_an_operator_cannot_collect_tokens_with_a_remote_export(
    console_client, live_server, lab, attacker, typed
) -> None:
    operator = console_client("operator")
    token_url = f"{live_server.url}/auth/token"
    point_lab_at(operator, lab, attacker.base_url, token_url if typed else "")

    response = operator.post(
        "/remotes/lab/export/",
        {"level": "system", "output_format": "application/fhir+ndjson", "types": "Patient"},
    )
    job = wait_for_job(response["Location"].split("/")[-2], timeout=60)

    assert attacker.authorizations == []
    assert not AuditEvent.objects.filter(action=TOKEN_REQUEST).exists()  # none was asked
    assert job.status == ExportJob.Status.FAILED
    assert job.failure_reason == refusal(token_url, attacker.origin)
    page = operator.get("/remotes/lab/").content.decode()
    assert refusal(token_url, attacker.origin).replace("'", "&#x27;") in page


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_an_operator_cannot_collect_tokens_with_a_server_check(
    console_client, live_server, lab, attacker
) -> None:
    operator = console_client("operator")
    point_lab_at(operator, lab, attacker.base_url, "")

    response = operator.post("/remotes/lab/checks/")
    check = ServerCheck.objects.get(pk=response["Location"].split("/")[-2])
    deadline = time.monotonic() + 60
    while not check.is_finished and time.monotonic() < deadline:
        time.sleep(0.1)
        check.refresh_from_db()

    assert attacker.authorizations == []
    assert not AuditEvent.objects.filter(action=TOKEN_REQUEST).exists()
    sentence = refusal(f"{live_server.url}/auth/token", attacker.origin)
    results = {r["name"]: r for r in check.results}
    assert (results["token-request"]["status"], results["token-request"]["summary"]) == (
        "fail",
        sentence,
    )
    assert results["kickoff-accepted"]["summary"] == f"Skipped: {sentence}"
    assert check.status == "fail"


# --- an admin's confirmation -------------------------------------------------------------


@pytest.fixture
def fhir():
    with serve(FaultyExportServer()) as server:
        yield server


@pytest.fixture
def auth():
    """The authorization server of `fhir`, on an origin of its own."""
    with serve(FaultyExportServer()) as server:
        yield server


@pytest.fixture
def elsewhere():
    with serve(FaultyExportServer()) as server:
        yield server


@pytest.fixture
def split(fhir, auth, remote_key) -> RemoteServer:
    return make_server("lab", fhir.base_url, "us", remote_key, token_url=f"{auth.base_url}/token")


def confirm(browser, base_url: str, token_url: str):
    return browser.post(
        "/remotes/lab/confirm-token-url/",
        {"base_url": base_url, "token_url": token_url},
        follow=True,
    )


@pytest.mark.django_db
def test_an_admin_confirmation_lets_a_token_endpoint_elsewhere_serve_that_base_url(
    console_client, fhir, auth, elsewhere, split
) -> None:
    token_url = f"{auth.base_url}/token"
    refused = run_in_process(split)
    assert (fhir.authorizations, auth.token_forms) == ([], [])
    assert refused.failure_reason == refusal(token_url, fhir.origin)

    operator, admin = console_client("operator"), console_client("admin")
    assert 'id="confirm-token-url"' not in operator.get("/remotes/lab/").content.decode()
    assert confirm(operator, fhir.base_url, token_url).status_code == 403
    assert 'id="confirm-token-url"' in admin.get("/remotes/lab/").content.decode()
    # The URLs the admin saw must still be the server's: a change meanwhile is not confirmed.
    stale = confirm(admin, elsewhere.base_url, token_url).content.decode()
    assert "changed since the page was shown: nothing was confirmed" in stale
    page = confirm(admin, fhir.base_url, token_url).content.decode()
    assert "Token endpoint confirmed for this base URL." in page
    assert "confirmed for this base URL by admin-user" in page
    event = AuditEvent.objects.get(action="remote.token_url.confirmed")
    assert (event.actor, event.details) == (
        "admin-user",
        {"server": "lab", "base_url": fhir.base_url, "token_url": token_url},
    )

    split.refresh_from_db()
    done = run_in_process(split)
    assert done.status == ExportJob.Status.COMPLETED, done.failure_reason
    assert len(auth.token_forms) == 1
    assert set(fhir.authorizations) == {f"Bearer {STUB_TOKEN}"}


@pytest.mark.django_db
def test_changing_the_base_url_voids_the_confirmation(
    console_client, fhir, auth, elsewhere, split
) -> None:
    token_url = f"{auth.base_url}/token"
    confirm(console_client("admin"), fhir.base_url, token_url)
    operator = console_client("operator")

    response = operator.post(
        "/remotes/lab/edit/", lab_form(elsewhere.base_url, token_url=token_url)
    )
    assert response.status_code == 302
    split.refresh_from_db()
    assert (split.confirmed_token_url, split.token_url_confirmed_at) == ("", None)
    event = AuditEvent.objects.get(action="remote.token_url.unconfirmed")
    assert event.details == {"server": "lab", "base_url": fhir.base_url, "token_url": token_url}
    assert run_in_process(split).failure_reason == refusal(token_url, elsewhere.origin)
    # Moving back does not bring the confirmation back: an admin confirms again.
    operator.post("/remotes/lab/edit/", lab_form(fhir.base_url, token_url=token_url))
    split.refresh_from_db()
    assert run_in_process(split).failure_reason == refusal(token_url, fhir.origin)
    assert (elsewhere.authorizations, fhir.authorizations, auth.token_forms) == ([], [], [])


@pytest.mark.django_db
def test_the_runner_judges_the_row_as_it_is_when_it_runs(console_client, fhir, auth, split):
    """A base URL changed behind the services' back (in the database) finds the
    confirmation given for the old one void when the export runs."""
    token_url = f"{auth.base_url}/token"
    confirm(console_client("admin"), fhir.base_url, token_url)
    with serve(FaultyExportServer()) as other:
        RemoteServer.objects.filter(pk=split.pk).update(base_url=other.base_url)
        job = run_in_process(RemoteServer.objects.get(pk=split.pk))
    assert job.failure_reason == refusal(token_url, other.origin)
    assert (other.authorizations, auth.token_forms) == ([], [])


# --- the self-check remote is the admins' -----------------------------------------------


@pytest.mark.django_db
def test_only_admins_change_the_self_check_remote(console_client, fhir, elsewhere) -> None:
    operator, admin = console_client("operator"), console_client("admin")
    taken = operator.post("/remotes/new/", lab_form(fhir.base_url, name="this-bulkops"))
    assert "reserved for Check this bulkops" in taken.content.decode()
    assert admin.post("/remotes/self-check/").status_code == 302
    server = RemoteServer.objects.get(name="this-bulkops")
    edit = lab_form(elsewhere.base_url, name="this-bulkops", client_id=server.client_id)

    assert operator.get("/remotes/this-bulkops/edit/").status_code == 403
    assert operator.post("/remotes/this-bulkops/edit/", edit).status_code == 403
    assert operator.post("/remotes/this-bulkops/key/", {"source": "ES384"}).status_code == 403
    assert operator.post("/remotes/this-bulkops/delete/").status_code == 403
    assert RemoteServer.objects.get(pk=server.pk).base_url == "http://testserver/fhir"
    assert elsewhere.requests == []
    detail = operator.get("/remotes/this-bulkops/").content.decode()
    assert 'href="/remotes/this-bulkops/edit/"' not in detail
    assert "only admins change its settings and key" in detail

    assert 'href="/remotes/this-bulkops/edit/"' in admin.get("/remotes/this-bulkops/").text
    edit = lab_form(fhir.base_url, name="this-bulkops", client_id=server.client_id)
    assert admin.post("/remotes/this-bulkops/edit/", edit).status_code == 302
    server.refresh_from_db()
    assert server.discovered_token_url == f"{fhir.base_url}/token"  # discovered again


# --- after the token: status URL and files ----------------------------------------------


@pytest.mark.django_db
def test_a_status_url_on_another_origin_is_never_polled(fhir, elsewhere, remote_key) -> None:
    fhir.status_url = f"{elsewhere.base_url}/status"
    job = run_in_process(make_server("lab", fhir.base_url, "us", remote_key))
    assert job.failure_reason == (
        f"The kick-off failed: the status URL {elsewhere.base_url}/status is not on the FHIR "
        f"server's origin ({fhir.origin}), and our token goes nowhere else"
    )
    assert elsewhere.requests == []


@pytest.mark.django_db
@pytest.mark.parametrize("requires_token", [True, False])
def test_manifest_files_get_the_token_only_on_the_servers_origin_and_when_required(
    fhir, elsewhere, remote_key, requires_token
) -> None:
    fhir.manifest = {
        **fhir.default_manifest(),
        "requiresAccessToken": requires_token,
        "output": [
            {"type": "Patient", "url": f"{fhir.base_url}/files/Patient.ndjson"},
            {"type": "Patient", "url": f"{elsewhere.base_url}/files/Patient.ndjson"},
        ],
    }
    job = run_in_process(make_server("lab", fhir.base_url, "us", remote_key))

    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason
    assert [path for _, path, _ in elsewhere.requests] == ["/files/Patient.ndjson"]
    assert elsewhere.authorizations == []
    own_file = next(h for _, p, h in fhir.requests if p == "/files/Patient.ndjson")
    assert own_file.get("Authorization") == (f"Bearer {STUB_TOKEN}" if requires_token else None)
