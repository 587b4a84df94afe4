"""Bulk Data 4 kick-off parameters and manifest shape (v4 digest §1.2, §1.6, §1.10)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bulkops.fhir.manifest_v4 import ManifestFile, Organization, build_manifest_v4
from bulkops.fhir.outcome import FhirError
from bulkops.fhir.params import (
    INCLUDE_ASSOCIATED_DATA,
    LENIENT,
    STRICT,
    SYSTEM,
    V4,
    pairs_from_parameters,
    parse_export_parameters,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def body(*parameters: dict) -> dict:
    return {"resourceType": "Parameters", "parameter": list(parameters)}


def parse(pairs, handling=STRICT, version=V4):
    return parse_export_parameters(pairs, level=SYSTEM, handling=handling, now=NOW, version=version)


def test_booleans_and_codings_become_plain_values():
    pairs = pairs_from_parameters(
        body(
            {"name": "allowPartialManifests", "valueBoolean": True},
            {
                "name": "includeAssociatedData",
                "valueCoding": {
                    "system": INCLUDE_ASSOCIATED_DATA,
                    "code": "LatestProvenanceResources",
                },
            },
        ),
        version=V4,
    )
    assert pairs == [
        ("allowPartialManifests", "true"),
        ("includeAssociatedData", "LatestProvenanceResources"),
    ]


def test_include_associated_data_as_a_code_only_under_lenient_handling():
    as_code = body({"name": "includeAssociatedData", "valueCode": "LatestProvenanceResources"})
    with pytest.raises(FhirError, match="must be a valueCoding"):
        pairs_from_parameters(as_code, version=V4)
    assert pairs_from_parameters(as_code, version=V4, handling=LENIENT) == [
        ("includeAssociatedData", "LatestProvenanceResources")
    ]


def test_comma_joined_values_are_refused_strict_and_split_lenient():
    with pytest.raises(FhirError, match="one value per _type parameter"):
        parse([("_type", "Patient,Condition")])
    assert parse([("_type", "Patient,Condition")], handling=LENIENT).types == (
        "Patient",
        "Condition",
    )


def test_v4_parameters_are_unknown_to_a_v2_kickoff():
    with pytest.raises(FhirError, match="allowPartialManifests"):
        parse([("allowPartialManifests", "true")], version="2.0.0")
    parsed = parse([("allowPartialManifests", "true")])
    assert parsed.allow_partial_manifests
    assert parsed.as_json()["allowPartialManifests"] is True
    assert "allowPartialManifests" not in parse([]).as_json()


def test_organize_output_by_other_types_is_not_supported():
    with pytest.raises(FhirError, match="cannot organise output by 'Encounter'"):
        parse([("organizeOutputBy", "Encounter")])
    lenient = parse([("organizeOutputBy", "Encounter")], handling=LENIENT)
    assert lenient.organize_output_by is None and "Encounter" in lenient.warnings[0]


def test_an_organised_manifest_leaves_out_output_types_and_empty_arrays():
    file = ManifestFile(url="https://x/f", count=2, size=10, resource_type="Patient")
    manifest = build_manifest_v4(
        transaction_time=NOW,
        requires_access_token=True,
        output=[file],
        deleted=[],
        outcome=[],
        organized_by=Organization("Patient", "one block per patient"),
    )
    assert manifest["output"] == [{"url": "https://x/f", "count": 2, "fileSize": 10}]
    assert manifest["outputOrganizedBy"] == "Patient"
    assert "deleted" not in manifest and "outcome" not in manifest and "link" not in manifest
