"""The console and the operator API drive deliveries; a copy runs an export at a remote
server (this bulkops on a live server, reached over HTTP like any other) and loads its
files here as one submission."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from bulkops.signing_keys import generate_private_jwk
from fhirstore.models import Resource
from remotes.models import RemoteServer
from tests.remotes.stub_server import FaultyExportServer, serve
from tests.transfers.conftest import exported_job, wait_for, wait_until
from transfers.copies import copy_finished
from transfers.models import Delivery

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def reached_at(settings, live_server) -> None:
    """The console is reached as testserver; receivers reach us at the live server.
    (Set once the export ran: test clients' tokens name testserver as audience.)"""
    settings.BULKOPS_BASE_URL = live_server.url


def test_operator_sends_holds_open_and_stops_from_the_console(
    store, client_a, receiver, console_client, settings, live_server
):
    job = exported_job(client_a)
    reached_at(settings, live_server)
    browser = console_client("operator")
    form = browser.get(f"/transfers/send/?job={job.uuid}").content.decode()
    assert f'value="{job.uuid}" selected' in form

    sent = browser.post(
        "/transfers/send/", {"job": str(job.uuid), "server": "receiver", "hold_open": "on"}
    )
    assert sent.status_code == 302, sent.content.decode()
    delivery = wait_for(Delivery.objects.get(), Delivery.Status.OPEN)
    page = browser.get(sent["Location"]).content.decode()
    assert "/stop/" in page and "/complete/" in page

    browser.post(f"/transfers/{delivery.uuid}/stop/")
    delivery = wait_for(delivery, Delivery.Status.STOPPED, Delivery.Status.FAILED)
    assert delivery.status == Delivery.Status.STOPPED, delivery.error
    page = browser.get(f"/transfers/{delivery.uuid}/").content.decode()
    assert "/complete/" not in page
    # A stopped delivery cannot be completed: the page says why, nothing is sent.
    refused = browser.post(f"/transfers/{delivery.uuid}/complete/", follow=True)
    assert "only an open one can be completed" in refused.content.decode()


def test_send_form_refuses_a_server_without_our_client_id(store, client_a, console_client):
    job = exported_job(client_a)
    server = RemoteServer(name="unregistered", base_url="https://fhir.invalid/r4")
    server.set_private_jwk(generate_private_jwk("ES384"))
    server.save()
    response = console_client("operator").post(
        "/transfers/send/", {"job": str(job.uuid), "server": "unregistered"}
    )
    assert response.status_code == 200
    assert "unregistered has no client_id for us yet" in response.content.decode()
    assert not Delivery.objects.exists()


def test_api_sends_and_refuses_what_cannot_be_done(
    store, client_a, receiver, api_as, settings, live_server
):
    job = exported_job(client_a)
    reached_at(settings, live_server)
    api = api_as("operator")
    bad = api.post("/api/v1/deliveries/create", {"job": str(job.uuid), "server": "nowhere"})
    assert bad.status_code == 400 and "server" in bad.json()["errors"]

    created = api.post("/api/v1/deliveries/create", {"job": str(job.uuid), "server": "receiver"})
    assert created.status_code == 201, created.content
    delivery = wait_for(Delivery.objects.get(), Delivery.Status.DONE, Delivery.Status.FAILED)
    shown = api.get(f"/api/v1/deliveries/{delivery.uuid}").json()
    assert shown["status"] == "done" and len(shown["outcomes"]) == 2
    # After completed nothing more may be sent for the submission (spec §3.2).
    stop = api.post(f"/api/v1/deliveries/{delivery.uuid}/stop")
    assert stop.status_code == 409


@pytest.fixture
def source(live_server, settings) -> Iterator[RemoteServer]:
    """A loopback remote Bulk Data server whose export is one Patient file."""
    with serve(FaultyExportServer()) as stub:
        server = RemoteServer(name="source", base_url=stub.base_url, client_id="us-at-stub")
        server.set_private_jwk(generate_private_jwk("ES384"))
        server.save()
        server.stub = stub
        reached_at(settings, live_server)
        yield server


def copy(browser, source: RemoteServer) -> Delivery:
    """Copy the source's system export from the console, and wait until it loaded here."""
    response = browser.post(
        f"/transfers/copy/{source.name}/",
        {"level": "system", "output_format": "application/fhir+ndjson"},
    )
    assert response.status_code == 302, response.content.decode()
    delivery = Delivery.objects.get()
    wait_until(lambda: copy_finished(Delivery.objects.get()))
    return delivery


def test_copy_from_a_remote_server_loads_its_export_here(source, console_client):
    source.stub.file_body = b"".join(
        json.dumps({"resourceType": "Patient", "id": pid, "gender": "other"}).encode() + b"\n"
        for pid in ("copied-1", "copied-2")
    )
    browser = console_client("operator")
    delivery = copy(browser, source)

    live = Resource.objects.filter(resource_type="Patient", deleted=False)
    assert set(live.values_list("resource_id", flat=True)) == {"copied-1", "copied-2"}
    page = browser.get(f"/transfers/{delivery.uuid}/").content.decode()
    assert '<dd id="delivery-status">Done</dd>' in page
    assert '<td>Patient</td><td>loaded</td><td class="num">2</td>' in page
    # The Data page lists the copy's submission with its counts.
    data = browser.get("/data/").content.decode()
    assert delivery.submission_id in data


def test_a_copied_file_that_is_refused_shows_why_escaped(source, console_client):
    source.stub.file_body = (
        b'{"resourceType":"Patient","id":"fine"}\n{"resourceType":"<b>Observation</b>","id":"o1"}\n'
    )
    browser = console_client("operator")
    delivery = copy(browser, source)

    assert not Resource.objects.filter(resource_id="fine").exists()
    page = browser.get(f"/transfers/{delivery.uuid}/").content.decode()
    assert "a &lt;b&gt;Observation&lt;/b&gt; in a file the manifest declares as Patient" in page
    assert "<b>Observation</b>" not in page
