"""Receivers that refuse or misbehave: a stub `$bulk-submit` server on 127.0.0.1. Our
token goes to the receiver's own origin only, and every failure names its step."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from bulkops.signing_keys import generate_private_jwk
from remotes.models import RemoteServer
from tests.remotes.stub_server import (
    STUB_TOKEN,
    TOKEN_RESPONSE,
    Reply,
    StubServer,
    TokenCollector,
    json_reply,
    serve,
)
from tests.transfers.conftest import exported_job, wait_for
from transfers.models import Delivery
from transfers.services import deliver
from transfers.submit_client import MAX_OUTCOMES

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@dataclass
class StubReceiver(StubServer):
    """Accepts every submission; its status names `elsewhere` when set, else its own
    origin, for the status URL and the outcome file."""

    submit_answer: Reply = (200, b'{"resourceType":"OperationOutcome"}', {})
    elsewhere: str = ""
    outcome_files: int = 1
    submitted: list[dict] = field(default_factory=list)  # the $bulk-submit bodies

    def answer(self, method: str, path: str, body: bytes) -> Reply:
        where = self.elsewhere or self.base_url
        if path == "/token":
            return json_reply(200, TOKEN_RESPONSE)
        if path == "/$bulk-submit":
            self.submitted.append(json.loads(body))
            return self.submit_answer
        if path == "/$bulk-submit-status":
            return 202, b"", {"Content-Location": f"{where}/status"}
        if path == "/status":
            return json_reply(200, {
                "submissionId": "x", "transactionTime": "2026-01-01T00:00:00Z",
                "requiresAccessToken": True, "output": [],
                "outcome": [{"url": f"{where}/outcome", "manifestUrl": "m"}] * self.outcome_files,
            })  # fmt: skip
        if path == "/outcome":
            issue = {"severity": "information", "code": "informational", "diagnostics": "ok"}
            return (
                200,
                json.dumps({"resourceType": "OperationOutcome", "issue": [issue]}).encode(),
                {},
            )
        return 404, b"", {}


@pytest.fixture
def stub_receiver() -> Iterator[StubReceiver]:
    with serve(StubReceiver()) as stub:
        yield stub


@pytest.fixture
def collector() -> Iterator[TokenCollector]:
    with serve(TokenCollector()) as stub:
        yield stub


def send_to(stub: StubServer, job) -> Delivery:
    server = RemoteServer(
        name="stub-receiver", base_url=stub.base_url, token_url=f"{stub.base_url}/token",
        client_id="us-at-stub",
    )  # fmt: skip
    server.set_private_jwk(generate_private_jwk("ES384"))
    server.save()
    delivery = deliver(job, server, base_url="http://127.0.0.1:1", actor="op", request=None)
    return wait_for(delivery, Delivery.Status.DONE, Delivery.Status.FAILED)


def test_a_status_url_on_another_origin_gets_no_token(store, client_a, stub_receiver, collector):
    stub_receiver.elsewhere = collector.base_url
    delivery = send_to(stub_receiver, exported_job(client_a))

    assert delivery.status == Delivery.Status.FAILED
    assert f"the status URL {collector.base_url}/status is not on the receiver's origin" in (
        delivery.error
    )
    assert collector.requests == []
    assert delivery.secret_hash == ""


def test_a_refused_submission_says_what_the_receiver_said(store, client_a, stub_receiver):
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "conflict", "diagnostics": "Already completed."}],
    }
    stub_receiver.submit_answer = json_reply(409, outcome)
    delivery = send_to(stub_receiver, exported_job(client_a))

    assert delivery.status == Delivery.Status.FAILED
    assert delivery.error == (
        "Sending the manifest to stub-receiver failed: $bulk-submit refused: "
        "HTTP 409: Already completed."
    )
    # Our token went with every request, all to the receiver's origin.
    assert set(stub_receiver.authorizations) == {f"Bearer {STUB_TOKEN}"}
    (sent,) = stub_receiver.submitted
    values = {p["name"]: p for p in sent["parameter"]}
    assert values["submitter"]["valueIdentifier"]["value"] == "us-at-stub"
    assert values["submissionStatus"]["valueCoding"]["code"] == "in-progress"
    assert values["fhirBaseUrl"]["valueUrl"] == "http://127.0.0.1:1/fhir"
    (header,) = [p["part"] for p in sent["parameter"] if p["name"] == "fileRequestHeader"]
    assert header[0]["valueString"] == "Authorization"


def test_a_receiver_listing_endless_outcome_files_is_read_up_to_a_bound(
    store, client_a, stub_receiver
):
    stub_receiver.outcome_files = MAX_OUTCOMES + 50
    delivery = send_to(stub_receiver, exported_job(client_a))

    assert delivery.status == Delivery.Status.DONE, delivery.error
    assert len(delivery.outcomes) == MAX_OUTCOMES
    fetched = [path for _, path, _ in stub_receiver.requests if path == "/outcome"]
    assert len(fetched) == MAX_OUTCOMES
