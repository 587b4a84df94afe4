"""GET /healthz reports database and broker reachability from a real server process."""

from __future__ import annotations

import json

import pytest

from tests.processes import free_port, http_get, manage, process_env, web_server


@pytest.fixture
def migrated_env(tmp_path):
    env = process_env(tmp_path)
    result = manage(env, "migrate", "--no-input")
    assert result.returncode == 0, result.stderr
    return env


def test_healthz_is_up_on_embedded_defaults(migrated_env):
    with web_server(migrated_env) as base:
        status, body = http_get(f"{base}/healthz")
    assert status == 200
    assert json.loads(body) == {"status": "ok", "database": "up", "broker": "up"}


def test_healthz_is_503_when_the_broker_is_down(migrated_env):
    env = {**migrated_env, "CELERY_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with web_server(env) as base:
        status, body = http_get(f"{base}/healthz")
    assert status == 503
    assert json.loads(body) == {"status": "unavailable", "database": "up", "broker": "down"}


def test_healthz_is_503_when_the_database_is_down(tmp_path):
    env = process_env(tmp_path, DATABASE_URL=f"postgres://nobody:x@127.0.0.1:{free_port()}/none")
    with web_server(env) as base:
        status, body = http_get(f"{base}/healthz")
    assert status == 503
    assert json.loads(body) == {"status": "unavailable", "database": "down", "broker": "up"}
