"""bulkops' own $export OperationDefinitions: valid R4 resources that list exactly what
the kick-off parser accepts at each level, documented from the engine's own tables."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from bulkops.fhir.elements import SUBSETTED_TAG
from bulkops.fhir.operation_definitions import (
    EXPORT_OPERATIONS,
    OPERATIONS_BY_LEVEL,
    operation_definition,
)
from bulkops.fhir.params import (
    GROUP,
    KNOWN_PARAMETERS,
    LEVELS,
    PATIENT,
    SYSTEM,
    accepted_parameters,
    parse_export_parameters,
)
from bulkops.fhir.resource_types import R4_RESOURCE_TYPES
from bulkops.fhir.search.criteria import (
    MAX_CRITERIA,
    MAX_VALUES,
    RESULT_PARAMETERS,
    supported_modifiers,
)
from bulkops.fhir.search.definitions import SUPPORTED_TYPES
from bulkops.fhir.type_filters import MAX_TYPE_FILTERS

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
BASE = "https://bulk.example.org/fhir"
IG = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition"
# Bulk Data IG 2.0.0 (HL7/bulk-data input/resources/operationdefinition-*.json):
# the definition each level is based on, its flags and its resource.
IG_LEVELS = {
    SYSTEM: (f"{IG}/export", (True, False, False), None),
    PATIENT: (f"{IG}/patient-export", (False, True, False), ["Patient"]),
    GROUP: (f"{IG}/group-export", (False, False, True), ["Group"]),
}
# R4 value sets of the elements checked below.
PUBLICATION_STATUS = {"draft", "active", "retired", "unknown"}
OPERATION_KIND = {"operation", "query"}
PARAMETER_USE = {"in", "out"}
BINDING_STRENGTH = {"required", "extensible", "preferred", "example"}
# One value of every parameter the parser knows, valid at the levels that take it.
SAMPLES = {
    "_outputFormat": "ndjson",
    "_since": "2024-01-01T00:00:00Z",
    "_until": "2025-01-01T00:00:00Z",
    "_type": "Patient,Observation",
    "_elements": "id",
    "patient": "Patient/p1",
    "includeAssociatedData": "LatestProvenanceResources",
    "_typeFilter": "Observation?category=laboratory",
}


def definition(level: str) -> dict:
    return operation_definition(OPERATIONS_BY_LEVEL[level], fhir_base=BASE)


def listed(level: str) -> dict[str, dict]:
    return {parameter["name"]: parameter for parameter in definition(level)["parameter"]}


@pytest.mark.parametrize("level", LEVELS)
def test_each_definition_is_a_structurally_valid_r4_operation_definition(level):
    resource = definition(level)
    assert resource["resourceType"] == "OperationDefinition"
    assert re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", resource["id"])
    assert re.fullmatch(r"[A-Z][A-Za-z0-9_]{0,254}", resource["name"])  # opd-0
    assert resource["status"] in PUBLICATION_STATUS
    assert resource["kind"] in OPERATION_KIND
    assert resource["code"] == "export"
    assert all(isinstance(resource[flag], bool) for flag in ("system", "type", "instance"))
    assert set(resource.get("resource", [])) <= R4_RESOURCE_TYPES
    assert resource["parameter"]
    for parameter in resource["parameter"]:
        assert parameter["use"] in PARAMETER_USE
        assert isinstance(parameter["min"], int) and parameter["min"] >= 0
        assert parameter["max"] == "*" or int(parameter["max"]) >= parameter["min"]
        assert parameter["type"] and parameter["documentation"]  # opd-1
        if "targetProfile" in parameter:  # opd-3
            assert parameter["type"] in ("Reference", "canonical")
        if "binding" in parameter:
            assert parameter["binding"]["strength"] in BINDING_STRENGTH


@pytest.mark.parametrize("level", LEVELS)
def test_each_definition_has_its_own_url_and_the_ig_flags_of_the_one_it_is_based_on(level):
    resource = definition(level)
    base, flags, resources = IG_LEVELS[level]
    assert resource["url"] == f"{BASE}/OperationDefinition/{resource['id']}"
    assert resource["base"] == base
    assert (resource["system"], resource["type"], resource["instance"]) == flags
    assert resource.get("resource") == resources


def test_one_definition_a_level_each_with_its_own_id_and_name():
    assert sorted(op.level for op in EXPORT_OPERATIONS) == sorted(LEVELS)
    assert len({op.id for op in EXPORT_OPERATIONS}) == len(LEVELS)
    assert len({op.name for op in EXPORT_OPERATIONS}) == len(LEVELS)


@pytest.mark.parametrize("level", LEVELS)
def test_each_level_lists_exactly_the_parameters_its_kick_off_accepts(level):
    """The parser's own list, and what it does: a listed parameter runs (bar the one
    documented as not supported, which warns), anything else is ignored with a warning."""
    assert set(SAMPLES) == KNOWN_PARAMETERS
    parameters = listed(level)
    assert set(parameters) == accepted_parameters(level)
    unsupported = {
        name for name, p in parameters.items() if p["documentation"].startswith("Not supported")
    }
    for name, value in [*SAMPLES.items(), ("_count", "10")]:
        parsed = parse_export_parameters(
            [(name, value)], level=level, handling="lenient", now=NOW, method="POST"
        )
        runs_as_asked = parsed.warnings == ()
        assert runs_as_asked == (name in parameters and name not in unsupported), name


def test_patient_is_listed_at_the_patient_and_group_levels_only():
    assert "patient" not in listed(SYSTEM)
    for level in (PATIENT, GROUP):
        patient = listed(level)["patient"]
        assert (patient["type"], patient["max"]) == ("Reference", "*")
        assert patient["targetProfile"] == ["http://hl7.org/fhir/StructureDefinition/Patient"]
        assert "POST only" in patient["documentation"]


def test_single_valued_parameters_have_max_one_and_lists_max_many():
    parameters = listed(GROUP)
    assert {name: p["max"] for name, p in parameters.items()} == {
        "_outputFormat": "1",
        "_since": "1",
        "_until": "1",
        "_type": "*",
        "_elements": "*",
        "patient": "*",
        "includeAssociatedData": "*",
        "_typeFilter": "*",
    }
    assert {name: p["type"] for name, p in parameters.items() if p["type"] != "string"} == {
        "_since": "instant",
        "_until": "instant",
        "patient": "Reference",
        "includeAssociatedData": "code",
    }


def test_type_filter_documentation_names_what_the_engine_supports_and_refuses():
    documentation = listed(SYSTEM)["_typeFilter"]["documentation"]
    for kind in SUPPORTED_TYPES:
        modifiers = ", ".join(f":{m}" for m in supported_modifiers(kind))
        assert f"{kind} ({modifiers})" in documentation
    assert all(name in documentation for name in RESULT_PARAMETERS)
    for refused in ("_has", "chained", "composite", "special"):
        assert refused in documentation
    for bound in (MAX_TYPE_FILTERS, MAX_CRITERIA, f"{MAX_VALUES:,}"):
        assert f"{bound} " in documentation
    assert "Prefer: handling=lenient" in documentation


def test_other_documentation_comes_from_the_parser_and_engine_constants():
    parameters = listed(PATIENT)
    output_format = parameters["_outputFormat"]["documentation"]
    assert all(alias in output_format for alias in ("application/ndjson", "ndjson"))
    assert SUBSETTED_TAG["system"] in parameters["_elements"]["documentation"]
    associated = parameters["includeAssociatedData"]["documentation"]
    assert "_includeAssociatedData" in associated
