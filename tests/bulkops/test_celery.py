"""Tasks travel through a real broker to a real worker."""

from __future__ import annotations

from bulkops.tasks import ping_task
from tests.processes import celery_worker_process, manage, process_env

SEND_PING = "from bulkops.tasks import ping_task; print(ping_task.delay().get(timeout=30))"


def test_in_process_worker_runs_a_task(celery_worker):
    assert ping_task.delay().get(timeout=10) == "pong"


def test_worker_started_like_make_run_consumes_from_the_filesystem_broker(tmp_path):
    env = process_env(tmp_path, CELERY_RESULT_BACKEND=f"file://{tmp_path / 'results'}")
    (tmp_path / "results").mkdir()
    with celery_worker_process(env):
        result = manage(env, "shell", "--no-imports", "-c", SEND_PING, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "pong"


KICK_OFF = """
from django.test import Client
from accounts.services import register_client
from bulkops.signing_keys import generate_private_jwk, public_jwks
from exports.bulk_client import make_client_assertion
from tests.smart import TOKEN_URL, post_form, token_form
jwk = generate_private_jwk("ES384")
backend = register_client(name="c", jwks=public_jwks(jwk), scopes="system/*.read", group_ids=[])
http = Client()
assertion = make_client_assertion(backend.client_id, jwk, TOKEN_URL)
token = post_form(token_form(assertion), http).json()["access_token"]
response = http.get(
    "/fhir/$export",
    headers={"Authorization": f"Bearer {token}", "Prefer": "respond-async"},
)
print(response.status_code)
"""


def test_a_kick_off_on_the_default_broker_logs_no_warning(tmp_path):
    """The job is queued on the filesystem broker without kombu's "No hostname was
    supplied" warning, which a hostless broker URL gave on every kick-off."""
    env = process_env(tmp_path, BULKOPS_LOG_LEVEL="INFO")
    assert manage(env, "migrate", "--no-input").returncode == 0
    result = manage(env, "shell", "--no-imports", "-c", KICK_OFF, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "202"
    logged = result.stdout + result.stderr
    assert "export accepted" in logged
    assert "WARNING" not in logged, logged
    assert any((tmp_path / "broker" / "queue").iterdir())  # the planning task was queued
