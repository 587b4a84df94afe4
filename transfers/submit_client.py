"""The Data Provider's side of Bulk Submit (spec digest §3) against one RemoteServer:
`$bulk-submit` calls, the `$bulk-submit-status` kick-off, polling and the outcome files,
all through the guarded outbound client with a `system/bulk-submit` token (§3.2)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bulkops.fhir.scopes import BULK_SUBMIT
from bulkops.outbound.origins import origin_text, same_origin
from exports.bulk_client import (
    BulkClientError,
    BulkExportClient,
    describe_error,
    http,
    redact_url,
)
from remotes.outcomes import read_outcomes
from remotes.target import RemoteTarget

EVENT_STATUS = "http://hl7.org/fhir/event-status"
WATCH_TIMEOUT = 6 * 3600
MAX_OUTCOME_BYTES = 1024 * 1024
# Issues kept from one status manifest: a receiver listing endless outcome files cannot
# make us fetch and store them all.
MAX_OUTCOMES = 1000


@dataclass(frozen=True)
class Submit:
    """One `$bulk-submit` call. A manifest call carries `manifest_url`, `fhir_base_url`
    and the headers; a status-only call (completed, stopped) none of them."""

    submitter: str
    submission_id: str
    status: str
    manifest_url: str = ""
    fhir_base_url: str = ""
    file_headers: Sequence[tuple[str, str]] = ()

    def parameters(self) -> dict[str, Any]:
        parameters = [
            *pair_parameters(self.submitter, self.submission_id),
            {
                "name": "submissionStatus",
                "valueCoding": {"system": EVENT_STATUS, "code": self.status},
            },
        ]
        if self.manifest_url:
            parameters += [
                {"name": "manifestUrl", "valueUrl": self.manifest_url},
                {"name": "fhirBaseUrl", "valueUrl": self.fhir_base_url},
            ]
        parameters += [
            {
                "name": "fileRequestHeader",
                "part": [
                    {"name": "headerName", "valueString": name},
                    {"name": "headerValue", "valueString": value},
                ],
            }
            for name, value in self.file_headers
        ]
        return {"resourceType": "Parameters", "parameter": parameters}


def pair_parameters(submitter: str, submission_id: str) -> list[dict[str, Any]]:
    """The pair that names a submission at its receiver (spec §3.2)."""
    return [
        {"name": "submitter", "valueIdentifier": {"value": submitter}},
        {"name": "submissionId", "valueString": submission_id},
    ]


class SubmitClient:
    """Talks to one receiver; the token goes to the receiver's own origin only."""

    def __init__(self, target: RemoteTarget) -> None:
        self.target = target
        self.tokens = target.token_source(BULK_SUBMIT)
        self.polls = BulkExportClient(target.base_url, self.tokens, verify_tls=target.verify_tls)

    def _post(self, operation: str, body: dict[str, Any], **headers: str) -> Any:
        return http(
            "POST",
            f"{self.target.base_url}/{operation}",
            headers={
                "Authorization": f"Bearer {self.tokens.token()}",
                "Accept": "application/fhir+json",
                "Content-Type": "application/fhir+json",
                **headers,
            },
            data=json.dumps(body).encode(),
            verify_tls=self.target.verify_tls,
        )

    def submit(self, call: Submit) -> None:
        """Spec §3.1: the receiver answers 200; anything else is its refusal."""
        result = self._post("$bulk-submit", call.parameters())
        if result.status != 200:
            raise BulkClientError(f"$bulk-submit refused: {describe_error(result)}")

    def status_url(self, submitter: str, submission_id: str) -> str:
        """Kick off `$bulk-submit-status` (spec §3.4); the URL to poll."""
        body = {
            "resourceType": "Parameters",
            "parameter": pair_parameters(submitter, submission_id),
        }
        result = self._post("$bulk-submit-status", body, Prefer="respond-async")
        if result.status != 202 or not result.headers.get("Content-Location"):
            raise BulkClientError(f"$bulk-submit-status refused: {describe_error(result)}")
        return self._own(result.headers["Content-Location"], "status URL")

    def _own(self, url: str, what: str) -> str:
        if not same_origin(url, self.target.base_url):
            raise BulkClientError(
                f"the {what} {redact_url(url)} is not on the receiver's origin "
                f"({origin_text(self.target.base_url)}), and our token goes nowhere else"
            )
        return url

    def watch(
        self, status_url: str, on_progress: Callable[[str], None], should_stop: Callable[[], bool]
    ) -> dict[str, Any]:
        """Poll until the final status manifest, as a remote export's status is polled."""
        return self.polls.wait(
            status_url, on_progress, timeout=WATCH_TIMEOUT, should_stop=should_stop
        )

    def outcomes(self, manifest: dict[str, Any]) -> list[dict[str, Any]]:
        """Each `outcome[]` file read: its manifestUrl, severity, plain words and raw line;
        at most MAX_OUTCOMES issues."""
        found: list[dict[str, Any]] = []
        items = manifest.get("outcome") if isinstance(manifest, dict) else None
        for item in items if isinstance(items, list) else []:
            if len(found) >= MAX_OUTCOMES:
                break
            if not isinstance(item, dict) or not isinstance(item.get("url"), str):
                continue
            url = self._own(item["url"], "outcome file")
            result = http(
                "GET",
                url,
                headers={
                    "Authorization": f"Bearer {self.tokens.token()}",
                    "Accept": "application/fhir+ndjson",
                },
                verify_tls=self.target.verify_tls,
                max_bytes=MAX_OUTCOME_BYTES,
            )
            if result.status != 200:
                raise BulkClientError(f"the outcome file {url} was answered HTTP {result.status}")
            for issue in read_outcomes(io.BytesIO(result.body)):
                found.append({"manifest_url": str(item.get("manifestUrl") or ""), **issue})
        return found[:MAX_OUTCOMES]
