from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from bulkops.fhir.manifest import (
    build_manifest,
    deletion_bundle_line,
    format_instant,
    warning_outcome_line,
)


def test_instants_are_utc_with_milliseconds():
    value = datetime(2025, 1, 2, 5, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    assert format_instant(value) == "2025-01-02T03:04:05.678Z"
    assert format_instant(datetime(2025, 1, 1, tzinfo=UTC)) == "2025-01-01T00:00:00.000Z"


def test_deleted_lines_are_transaction_bundles_with_a_delete_request():
    line = deletion_bundle_line("Observation", "o1")
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": "Observation/o1"}}],
    }


def test_warning_lines_are_operation_outcomes():
    outcome = json.loads(warning_outcome_line("Condition was left out."))
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "warning"
    assert outcome["issue"][0]["diagnostics"] == "Condition was left out."


def test_applied_filters_and_until_go_into_the_extension_only_when_given():
    common = {
        "transaction_time": datetime(2025, 1, 1, tzinfo=UTC),
        "request_url": "https://x/fhir/$export",
        "requires_access_token": True,
        "output": [],
        "deleted": [],
        "error": [],
    }
    assert "extension" not in build_manifest(**common)
    manifest = build_manifest(
        **common,
        type_filters=["Observation?category=laboratory"],
        until=datetime(2024, 12, 31, tzinfo=UTC),
    )
    assert manifest["extension"] == {
        "_typeFilter": ["Observation?category=laboratory"],
        "_until": "2024-12-31T00:00:00.000Z",
    }
