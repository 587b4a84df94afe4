"""Partial manifests (`$export-v4` with `allowPartialManifests`) against waiting for the
complete manifest: a client that downloads each file as soon as a manifest page lists
it, timed to its first and last downloaded byte, beside the same client that waits for
the complete manifest and then downloads (issue 25, point 2)."""

from __future__ import annotations

import json
import time
from typing import Any

from bench.measure import POLL_SECONDS, BenchStore, _client, _http
from exports.bulk_client import BulkExportClient, http


def partial_manifest_rows(store: BenchStore, base: str) -> list[dict[str, Any]]:
    waited = download_export(store, base, partial=False)
    early = download_export(store, base, partial=True)
    early["last_byte_vs_wait"] = waited["last_byte_s"] / early["last_byte_s"]
    early["first_byte_vs_wait"] = waited["first_byte_s"] / early["first_byte_s"]
    waited["bench"] = "v4 export, download after manifest"
    early["bench"] = "v4 export, download from partial pages"
    return [waited, early]


def download_export(store: BenchStore, base: str, *, partial: bool) -> dict[str, Any]:
    """A system `$export-v4`, every output file downloaded; seconds from the kick-off."""
    client = _client(store, base)
    parameters = [{"name": "allowPartialManifests", "valueBoolean": True}] if partial else []
    started = time.perf_counter()
    kickoff = http(
        "POST",
        f"{base}/fhir/$export-v4",
        headers={
            **client._auth(),
            "Accept": "application/fhir+json",
            "Prefer": "respond-async",
            "Content-Type": "application/fhir+json",
        },
        data=json.dumps({"resourceType": "Parameters", "parameter": parameters}).encode(),
        allow_private=True,
    )
    status_url = kickoff.headers["Content-Location"]
    fetched: dict[str, int] = {}
    first_byte: float | None = None
    while True:
        answer = _http("GET", status_url, client._auth())
        if answer.status not in (200, 202):
            raise RuntimeError(f"export failed: HTTP {answer.status} {answer.body[:300]!r}")
        if answer.body:
            for manifest in pages(client, json.loads(answer.body)):
                for item in manifest.get("output", []):
                    if item["url"] not in fetched:
                        fetched[item["url"]] = download(client, item["url"], manifest)
                        first_byte = first_byte or time.perf_counter() - started
        if answer.status == 200:
            break
        time.sleep(POLL_SECONDS)
    last_byte = time.perf_counter() - started
    _http("DELETE", status_url, client._auth())
    return {
        "db": store.vendor,
        "resources": store.resources,
        "files": len(fetched),
        "mb": sum(fetched.values()) / 1e6,
        "first_byte_s": first_byte or last_byte,
        "last_byte_s": last_byte,
        "seconds": last_byte,
    }


def pages(client: BulkExportClient, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest and every page its `link` chain leads to."""
    chain = [manifest]
    while links := chain[-1].get("link"):
        chain.append(json.loads(_http("GET", links[0]["url"], client._auth()).body))
    return chain


def download(client: BulkExportClient, url: str, manifest: dict[str, Any]) -> int:
    """Read one file to the end, as a client storing it would; its size in bytes."""
    size = 0
    with client.open_file(url, manifest) as chunks:
        for chunk in chunks:
            size += len(chunk)
    return size
