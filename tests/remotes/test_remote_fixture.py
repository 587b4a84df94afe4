"""The remote bulkops fixture is a working Bulk Data server for a key bulkops generated."""

from __future__ import annotations

from bulkops.signing_keys import generate_private_jwk, public_jwks
from exports.bulk_client import BulkExportClient, TokenSource
from tests.remotes.remote_server import GROUP_ID, PATIENTS


def test_remote_serves_a_group_export_to_a_generated_key(remote, tmp_path):
    private = generate_private_jwk("ES384")
    client_id = remote.register(public_jwks(private))
    base = remote.base_url.removesuffix("/fhir")
    tokens = TokenSource(f"{base}/auth/token", client_id, private, "system/*.read")
    client = BulkExportClient(remote.base_url, tokens)

    status_url = client.kick_off(f"/Group/{GROUP_ID}/$export", [("_type", "Patient")])
    outcome = client.download(client.wait(status_url, lambda _: None, timeout=60), tmp_path)

    assert [(kind, lines) for kind, _, lines in outcome.files] == [("Patient", PATIENTS)]
    assert len(remote.resource_ids()["Patient"]) == PATIENTS
