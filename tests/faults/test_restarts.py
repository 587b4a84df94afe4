"""The web server and the broker going away and coming back lose no export."""

from __future__ import annotations

import pytest

from tests.faults.conftest import deploy
from tests.processes import web_server


@pytest.fixture
def deployment(tmp_path, redis):
    yield from deploy(tmp_path, redis, patients=10)


def test_web_restart_loses_no_export(deployment):
    deployment.start_beat()
    deployment.start_worker()
    with web_server(deployment.env) as first:
        deployment.base_url = first
        status_url = deployment.client().kick_off("/Patient/$export", [])
    with web_server(deployment.env) as second:
        deployment.base_url = second
        moved = status_url.replace(first, second)
        manifest = deployment.client().wait(moved, print, 90)
    assert manifest["output"]


def test_broker_outage_that_loses_every_queued_message_loses_no_export(deployment, redis):
    deployment.start()
    client = deployment.client()
    before = client.kick_off("/Patient/$export", [])
    redis.kill()  # no persistence: every queued task is gone
    during = client.kick_off("/Patient/$export", [("_type", "Patient,Condition")])
    redis.start()

    for status_url in (before, during):
        manifest = client.wait(status_url, print, 90)
        assert manifest["output"], status_url
