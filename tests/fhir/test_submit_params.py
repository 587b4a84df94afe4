"""$bulk-submit Parameters (spec digest bulk-data-v4-ballot.md §3.2), without a database."""

from __future__ import annotations

import pytest

from bulkops.fhir.outcome import FhirError
from bulkops.fhir.submit import parse_submit


def body(*extra: dict) -> dict:
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "submitter", "valueIdentifier": {"value": "client-1"}},
            {"name": "submissionId", "valueString": "s1"},
            {"name": "manifestUrl", "valueUrl": "https://dp.example/m.json"},
            {"name": "fhirBaseUrl", "valueUrl": "https://dp.example/fhir"},
            *extra,
        ],
    }


def header(name: str, value: str) -> dict:
    return {"name": "fileRequestHeader", "part": [
        {"name": "headerName", "valueString": name},
        {"name": "headerValue", "valueString": value},
    ]}  # fmt: skip


def test_status_defaults_to_in_progress_and_headers_are_kept() -> None:
    parsed = parse_submit(body(header("X-Api-Key", "k")))
    assert parsed.status == "in-progress"
    assert parsed.file_headers == (("X-Api-Key", "k"),)


@pytest.mark.parametrize(
    ("name", "value"),
    [("X-Key", "a\r\nHost: internal"), ("Bad Name", "v"), ("Host", "internal.example")],
)
def test_header_that_could_rewrite_the_request_is_refused(name: str, value: str) -> None:
    with pytest.raises(FhirError) as refused:
        parse_submit(body(header(name, value)))
    assert refused.value.status == 400


@pytest.mark.parametrize("name", ["oauthMetadataUrl", "fileEncryptionKey"])
def test_parameters_bulkops_cannot_honour_are_refused(name: str) -> None:
    with pytest.raises(FhirError, match="not supported"):
        parse_submit(body({"name": name, "valueUrl": "https://dp.example/x"}))
