"""PostgreSQL out of reach (its connections cut at the network, as when the database
host goes away): kick-off and token requests answer 503 in their own formats, /healthz
says so, and an export running through the outage still completes."""

from __future__ import annotations

import os
import re
import time

import pytest

from exports.bulk_client import http, make_client_assertion
from tests.faults.conftest import deploy
from tests.faults.deployment import progress_resources
from tests.faults.tcp_proxy import TcpProxy

pytestmark = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="a database outage needs a database server; SQLite is a local file",
)


@pytest.fixture
def deployment(tmp_path, redis):
    for deployment in deploy(tmp_path, redis, patients=15):
        url = deployment.env["DATABASE_URL"]
        with TcpProxy.for_database_url(url) as proxy:
            deployment.env["DATABASE_URL"] = proxy.database_url
            deployment.proxy = proxy
            yield deployment


def test_requests_during_an_outage_get_503_in_their_own_format(deployment):
    deployment.start_web()
    client = deployment.client()
    token = client.tokens.token()
    deployment.proxy.cut()

    kickoff = http(
        "GET",
        f"{deployment.base_url}/fhir/Patient/$export",
        headers={"Authorization": f"Bearer {token}", "Prefer": "respond-async",
                 "Accept": "application/fhir+json"},
    )  # fmt: skip
    assertion = make_client_assertion(
        deployment.client_id, deployment.private_jwk, f"{deployment.base_url}/auth/token"
    )
    token_request = http(
        "POST",
        f"{deployment.base_url}/auth/token",
        data=(
            "grant_type=client_credentials&scope=system%2F*.read&client_assertion_type="
            "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
            f"&client_assertion={assertion}"
        ).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    health = http("GET", f"{deployment.base_url}/healthz")

    assert kickoff.status == 503
    assert kickoff.headers["Retry-After"]
    assert kickoff.json()["resourceType"] == "OperationOutcome"
    assert kickoff.json()["issue"][0]["code"] == "transient"
    assert token_request.status == 503
    assert token_request.json()["error"] == "temporarily_unavailable"
    assert health.status == 503 and health.json()["database"] == "down"
    assert b"Traceback" not in kickoff.body + token_request.body

    deployment.proxy.restore()
    assert http("GET", f"{deployment.base_url}/healthz").status == 200


def test_export_running_through_an_outage_retries_and_completes(deployment):
    deployment.start()
    client = deployment.client()
    status_url = client.kick_off("/Patient/$export", [])
    deployment.wait_for(
        status_url, done=lambda status, headers: status == 202 and progress_resources(headers)
    )
    token = client.tokens.token()
    deployment.proxy.cut()
    time.sleep(4)
    status = http("GET", status_url, headers={"Authorization": f"Bearer {token}"})
    assert status.status == 503  # the web app cannot read the job either
    deployment.proxy.restore()

    manifest = client.wait(status_url, print, 120)
    assert manifest["output"]
    logs = "".join(path.read_text() for path in deployment.var_dir.glob("worker-*.log"))
    assert re.search(r"Retry in \d+s: OperationalError", logs), "the outage missed the job"
