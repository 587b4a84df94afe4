"""The conformance battery over real HTTP: clean against a real bulkops, and naming each
fault of a deliberately broken server with the exchanges that show it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bulkops.signing_keys import generate_private_jwk, public_jwks
from remotes.checks import CHECKS, run_battery
from remotes.target import RemoteTarget
from tests.remotes.remote_server import GROUP_ID
from tests.remotes.stub_server import (
    STUB_TOKEN,
    NonConformingServer,
    ReferenceLikeServer,
    Reply,
    serve,
)


def test_battery_finds_nothing_wrong_with_bulkops(remote):
    private = generate_private_jwk("RS384")
    client_id = remote.register(public_jwks(private))
    target = RemoteTarget(
        base_url=remote.base_url, client_id=client_id, private_jwk=private,
        scope="system/*.read", group_id=GROUP_ID,
    )  # fmt: skip

    results = run_battery(target)

    assert [r.name for r in results] == [check.name for check in CHECKS]
    assert {r.name: r.summary for r in results if r.status == "fail"} == {}
    statuses = {r.name: r.status for r in results}
    for name in ("token-request", "token-reused-jti", "kickoff-accepted", "manifest-fields",
                 "ndjson-files", "output-counts", "requires-access-token", "delete",
                 "v4-get-refused", "v4-kickoff-accepted", "v4-manifest-pages",
                 "v4-organized-output", "v4-separate-export-status"):  # fmt: skip
        assert statuses[name] == "pass", (name, statuses)
    files = next(r for r in results if r.name == "ndjson-files")
    # Evidence of the file's shape, no patient data: every value but type and id left out.
    first = json.loads(files.excerpts[0]["text"])
    assert first["resourceType"] == "Patient"
    elided = {key: value for key, value in first.items() if key not in ("resourceType", "id")}
    assert "birthDate" in elided and elided == dict.fromkeys(elided, "...")
    assert all(
        exchange["request_headers"].get("Authorization", "REDACTED") == "REDACTED"
        for result in results
        for exchange in result.exchanges
    )


def stub_target(base_url: str) -> RemoteTarget:
    return RemoteTarget(
        base_url=base_url, client_id="bulkops", private_jwk=generate_private_jwk("ES384"),
        scope="system/*.read",
    )  # fmt: skip


def test_battery_names_each_fault_of_a_broken_server():
    with serve(NonConformingServer()) as stub:
        results = {r.name: r for r in run_battery(stub_target(stub.base_url))}

    assert {name: r.status for name, r in results.items()} == {
        "smart-configuration": "fail",
        "capability-statement": "fail",
        "token-request": "pass",
        "token-wrong-audience": "fail",
        "token-expired-assertion": "fail",
        "token-reused-jti": "fail",
        "kickoff-without-prefer": "warn",
        "kickoff-bad-accept": "warn",
        "kickoff-without-token": "fail",
        "kickoff-accepted": "pass",
        "status-polling": "warn",
        "manifest-fields": "fail",
        "ndjson-files": "fail",
        "output-counts": "fail",
        "requires-access-token": "fail",
        "expires-header": "warn",
        "delete": "fail",
        "v4-get-refused": "skip",
        "v4-kickoff-accepted": "skip",
        "v4-manifest-pages": "skip",
        "v4-organized-output": "skip",
        "v4-separate-export-status": "skip",
    }
    assert "does not declare export-v4" in results["v4-kickoff-accepted"].summary
    assert "no v4 export completed" in results["v4-manifest-pages"].summary
    assert "private_key_jwt" in results["smart-configuration"].summary
    assert "issued a token" in results["token-expired-assertion"].summary
    assert "transactionTime is missing" in results["manifest-fields"].summary
    assert "error[] is missing" in results["manifest-fields"].summary
    assert "line 1 holds a Observation" in results["ndjson-files"].summary
    assert "count 3; the file has 2 lines" in results["output-counts"].summary
    assert "Retry-After" in results["status-polling"].summary
    no_token = results["requires-access-token"].exchanges[0]
    assert (no_token["method"], no_token["status"]) == ("GET", 200)
    assert "Authorization" not in no_token["request_headers"]
    assert [(e["method"], e["status"]) for e in results["delete"].exchanges] == [("DELETE", 405)]
    assert STUB_TOKEN not in json.dumps([r.as_json() for r in results.values()])


def test_a_kickoff_without_status_url_skips_what_depends_on_it():
    with serve(NonConformingServer(content_location=False)) as stub:
        results = {r.name: r for r in run_battery(stub_target(stub.base_url))}

    assert results["kickoff-accepted"].status == "fail"
    assert "Content-Location" in results["kickoff-accepted"].summary
    for name in ("status-polling", "manifest-fields", "ndjson-files", "delete"):
        assert results[name].status == "skip", name
        assert "the kick-off gave no status URL" in results[name].summary


def test_a_deeply_nested_manifest_is_a_failed_check_not_a_crash():
    with serve(NonConformingServer(nested_manifest=True)) as stub:
        results = {r.name: r for r in run_battery(stub_target(stub.base_url))}

    assert results["status-polling"].status == "fail"
    assert "The manifest is not JSON." in results["status-polling"].summary
    assert results["status-polling"].excerpts[-1]["text"].startswith("[[[[")
    assert results["manifest-fields"].status == "skip"


def test_files_on_another_host_never_get_our_token():
    with serve(NonConformingServer(presigned=True)) as stub:
        results = {r.name: r for r in run_battery(stub_target(stub.base_url))}

    assert results["requires-access-token"].status == "pass"
    assert "without a token" in results["requires-access-token"].summary
    assert results["ndjson-files"].exchanges[0]["url"].startswith("http://localhost:")
    assert stub.file_authorizations == [None, None]  # the download and the no-token probe


def test_an_unreachable_server_fails_its_checks_with_the_reason():
    with serve(NonConformingServer()) as stub:
        base_url = stub.base_url  # the port is closed once the stub has stopped

    results = {r.name: r for r in run_battery(stub_target(base_url))}

    assert results["smart-configuration"].status == "fail"
    assert results["smart-configuration"].summary.startswith("The request failed:")
    assert results["kickoff-without-token"].status == "fail"
    assert results["token-request"].status == "skip"
    assert results["delete"].status == "skip"


class V2ShapedV4Server(ReferenceLikeServer):
    """Declares export-v4 but treats it as 2.0.0: a GET kick-off is accepted and the
    manifest keeps `request` and `error`, types its organised output and pages it with
    a link of two items."""

    def _capability_statement(self) -> dict[str, Any]:
        statement = super()._capability_statement()
        rest = statement["rest"][0]
        rest["operation"].append({"name": "export-v4", "definition": "x|4.0.0"})
        return statement

    # Answers to give the kick-off and its polls: none, so the first poll is the manifest.
    kickoff_headers: dict[str, str] = {}
    polls_before: tuple[tuple[Any, ...], ...] = ()

    def _reply(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Reply:
        if path.endswith("/$export-v4") and headers.get("Authorization") == f"Bearer {STUB_TOKEN}":
            self.job_deleted, self.polls = False, list(self.polls_before)
            location = {"Content-Location": f"{self.base_url}/status"}
            return 202, b"", {**location, **self.kickoff_headers}
        return super()._reply(method, path, body, headers)

    def default_manifest(self) -> dict[str, Any]:
        manifest = super().default_manifest()
        manifest["outputOrganizedBy"] = "Patient"
        manifest["link"] = [{"relation": "next", "url": "a"}, {"relation": "next", "url": "b"}]
        return manifest


def test_the_v4_checks_name_a_2_0_0_manifest_behind_export_v4():
    with serve(V2ShapedV4Server()) as stub:
        results = {r.name: r for r in run_battery(stub_target(stub.base_url))}

    assert results["v4-get-refused"].status == "fail"
    assert "was accepted" in results["v4-get-refused"].summary
    assert results["v4-kickoff-accepted"].status == "pass"
    pages = results["v4-manifest-pages"]
    assert pages.status == "fail"
    assert "not one item with relation next" in pages.summary
    assert "has 'request'" in pages.summary and "has 'error'" in pages.summary
    assert "output[].type is set although outputOrganizedBy is" in pages.summary
    organized = results["v4-organized-output"]
    assert organized.status == "fail"
    assert "line 1 comes before the first block header" in organized.summary
    separate = results["v4-separate-export-status"]
    assert separate.status == "pass" and "not offered (optional)" in separate.summary


class FalseSeparateStatusServer(V2ShapedV4Server):
    """Says it applied separate-export-status, then answers a running job's poll 202
    without X-Export-Status, as if it had not."""

    kickoff_headers = {"Preference-Applied": "respond-async, separate-export-status"}
    polls_before = ((202, {"Retry-After": "1"}),)


def test_a_separate_export_status_applied_but_not_honoured_fails_its_check():
    with serve(FalseSeparateStatusServer()) as stub:
        results = {r.name: r for r in run_battery(stub_target(stub.base_url))}

    separate = results["v4-separate-export-status"]
    assert separate.status == "fail"
    assert "a poll answered 202 with X-Export-Status missing" in separate.summary
