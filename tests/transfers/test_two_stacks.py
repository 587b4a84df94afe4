"""Export from one bulkops, submit to a second: the receiver is a bulkops of its own
(gunicorn, a Celery worker process and its own SQLite database, as `make run` starts
them), the provider this test's bulkops (live server and worker), holding the shared
Synthea data. Every resource the provider exports arrives in the receiver's store
identical but for `meta`, numbers written as the provider wrote them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bulkops.signing_keys import generate_private_jwk, public_jwks
from fhirstore.models import Resource
from remotes.models import RemoteServer
from tests.processes import celery_worker_process, manage, process_env, sqlite_rows, web_server
from tests.shared_data import SYNTHEA_NDJSON, needs_synthea
from tests.transfers.conftest import exported_job, wait_for
from transfers.models import Delivery
from transfers.services import deliver

pytestmark = [
    needs_synthea,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("celery_worker"),
]


def exact(body: str) -> dict[str, Any]:
    """A stored body without `meta`, each number kept as the text it was written in."""
    resource = json.loads(
        body, parse_float=lambda text: ("number", text), parse_int=lambda text: ("number", text)
    )
    return {key: value for key, value in resource.items() if key != "meta"}


def receiving_bulkops(var_dir: Path, provider_key: dict[str, Any]) -> tuple[dict[str, str], str]:
    """The second bulkops's environment, migrated, with the provider registered as a
    backend client allowed to submit; and that client's id."""
    env = process_env(var_dir, BULKOPS_ALLOW_PRIVATE_FETCH="true")
    migrated = manage(env, "migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stderr
    jwks = var_dir / "provider-jwks.json"
    jwks.write_text(json.dumps(public_jwks(provider_key)))
    registered = manage(
        env, "register_client", "--name", "provider", "--jwks-file", str(jwks),
        "--scopes", "system/bulk-submit", "--json",
    )  # fmt: skip
    assert registered.returncode == 0, registered.stderr
    return env, json.loads(registered.stdout)["client_id"]


def test_an_export_submitted_to_a_second_bulkops_arrives_identical(
    tmp_path, load_fhir, client_a, live_server
):
    assert not load_fhir(SYNTHEA_NDJSON).failed
    job = exported_job(client_a, "/fhir/$export")
    sent = {
        (r.resource_type, r.resource_id): exact(r.body)
        for r in Resource.objects.filter(deleted=False)
    }
    assert job.resources_exported == len(sent) > 2000

    key = generate_private_jwk("ES384")
    env, client_id = receiving_bulkops(tmp_path / "second", key)
    with web_server(env) as second_url, celery_worker_process(env):
        second = RemoteServer(
            name="second bulkops",
            base_url=f"{second_url}/fhir",
            token_url=f"{second_url}/auth/token",
            client_id=client_id,
        )
        second.set_private_jwk(key)
        second.save()
        delivery = deliver(job, second, base_url=live_server.url, actor="op", request=None)
        delivery = wait_for(delivery, Delivery.Status.DONE, Delivery.Status.FAILED, timeout=180)

    assert delivery.status == Delivery.Status.DONE, delivery.error
    assert len(delivery.outcomes) == job.files.filter(kind="output").count()
    assert all(outcome["severity"] == "information" for outcome in delivery.outcomes)
    arrived = {
        (resource_type, resource_id): exact(body)
        for resource_type, resource_id, body in sqlite_rows(
            tmp_path / "second",
            "SELECT resource_type, resource_id, body FROM exports_resource WHERE NOT deleted",
        )
    }
    assert arrived.keys() == sent.keys()
    different = [key for key in sent if arrived[key] != sent[key]]
    assert not different, f"{len(different)} resources changed, e.g. {different[:3]}"
