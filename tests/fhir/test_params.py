from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bulkops.fhir.outcome import FhirError
from bulkops.fhir.params import (
    GROUP,
    PATIENT,
    SYSTEM,
    ElementSelection,
    pairs_from_parameters,
    parse_export_parameters,
    parse_prefer,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def parse(pairs, *, level=SYSTEM, handling="strict", method="GET"):
    return parse_export_parameters(pairs, level=level, handling=handling, now=NOW, method=method)


def refused(pairs, **kwargs) -> FhirError:
    with pytest.raises(FhirError) as caught:
        parse(pairs, **kwargs)
    assert caught.value.status == 400
    return caught.value


def test_type_given_comma_separated_and_repeated_means_the_same():
    joined = parse([("_type", "Patient,Observation")])
    repeated = parse([("_type", "Patient"), ("_type", "Observation")])
    assert joined.types == repeated.types == ("Patient", "Observation")


def test_unknown_type_is_refused_strict_and_dropped_with_a_warning_lenient():
    assert "Banana" in refused([("_type", "Patient,Banana")]).diagnostics
    lenient = parse([("_type", "Patient,Banana")], handling="lenient")
    assert lenient.types == ("Patient",)
    assert "Banana" in lenient.warnings[0]


def test_since_accepts_instants_with_zone_and_a_plus_decoded_to_space():
    assert parse([("_since", "2024-01-31T12:00:00Z")]).since == datetime(
        2024, 1, 31, 12, tzinfo=UTC
    )
    assert parse([("_since", "2024-01-31T14:00:00.123 02:00")]).since == datetime(
        2024, 1, 31, 12, 0, 0, 123000, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "value", ["2024-01-31", "2024-01-31T12:00:00", "yesterday", "2024-13-01T00:00:00Z", ""]
)
def test_since_that_is_not_an_instant_is_refused(value):
    assert "FHIR instant" in refused([("_since", value)]).diagnostics


@pytest.mark.parametrize("name", ["_since", "_until"])
@pytest.mark.parametrize("handling", ["strict", "lenient"])
def test_a_date_only_since_or_until_is_refused_naming_the_instant_to_send(name, handling):
    """Refused under lenient handling too: which day a date means depends on a time
    zone bulkops would have to guess."""
    error = refused([(name, "2024-01-01")], handling=handling)
    assert error.diagnostics == (
        f"{name} must be a FHIR instant with a time zone, not a date: for the start of "
        f"2024-01-01 in UTC send {name}=2024-01-01T00:00:00Z."
    )


@pytest.mark.parametrize(
    "value", ["2020-02-30T00:00:00Z", "0000-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00"]
)
def test_since_on_a_day_that_does_not_exist_is_400_not_a_crash(value):
    """Found by fuzzing: these match the instant pattern, then broke datetime (a 500)."""
    assert "not a date and time that exists" in refused([("_since", value)]).diagnostics


def test_since_in_the_future_is_refused():
    assert "future" in refused([("_since", "2030-01-01T00:00:00Z")]).diagnostics


def test_single_valued_parameters_may_not_repeat():
    refused([("_since", "2024-01-01T00:00:00Z"), ("_since", "2024-01-02T00:00:00Z")])


@pytest.mark.parametrize("value", ["application/fhir+ndjson", "application/ndjson", "ndjson"])
def test_output_format_aliases_are_all_ndjson(value):
    assert parse([("_outputFormat", value)]).output_format == "application/fhir+ndjson"


def test_other_output_formats_are_refused():
    assert "text/csv" in refused([("_outputFormat", "text/csv")]).diagnostics


def test_elements_typed_and_untyped():
    parsed = parse([("_elements", "Patient.name,id"), ("_elements", "Observation.value[x]")])
    assert parsed.elements == (
        ElementSelection("Patient", "name"),
        ElementSelection(None, "id"),
        ElementSelection("Observation", "value[x]"),
    )


def test_nested_elements_are_refused():
    assert "top-level" in refused([("_elements", "Patient.name.given")]).diagnostics


def test_patient_parameter_only_in_post_and_not_at_system_level():
    assert "POST" in refused([("patient", "Patient/1")], level=PATIENT).diagnostics
    assert (
        "Patient and Group"
        in refused([("patient", "Patient/1")], level=SYSTEM, method="POST").diagnostics
    )
    assert parse(
        [("patient", "Patient/1"), ("patient", "https://x/fhir/Patient/2")],
        level=GROUP,
        method="POST",
    ).patients == ("1", "2")


def test_unsupported_parameters_are_refused_strict_and_reported_lenient():
    assert "includeAssociatedData" in refused([("includeAssociatedData", "_x")]).diagnostics
    lenient = parse(
        [("includeAssociatedData", "LatestProvenanceResources"), ("foo", "bar")],
        handling="lenient",
    )
    assert len(lenient.warnings) == 2
    assert any("includeAssociatedData" in w for w in lenient.warnings)
    assert any("'foo'" in w for w in lenient.warnings)


def test_prefer_header_combinations():
    assert parse_prefer("respond-async") == parse_prefer("Respond-Async")
    assert parse_prefer("respond-async, handling=lenient").handling == "lenient"
    assert parse_prefer("respond-async; handling=strict").handling == "strict"
    assert not parse_prefer("").respond_async
    assert not parse_prefer("return=minimal").respond_async


def test_parameters_resource_flattens_to_pairs():
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "_type", "valueString": "Patient"},
            {"name": "_since", "valueInstant": "2024-01-01T00:00:00Z"},
            {"name": "patient", "valueReference": {"reference": "Patient/7"}},
        ],
    }
    assert pairs_from_parameters(body) == [
        ("_type", "Patient"),
        ("_since", "2024-01-01T00:00:00Z"),
        ("patient", "Patient/7"),
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"resourceType": "Patient"},
        {"resourceType": "Parameters", "parameter": {}},
        {"resourceType": "Parameters", "parameter": [{"valueString": "x"}]},
        {"resourceType": "Parameters", "parameter": [{"name": "_type", "valueInteger": 1}]},
    ],
)
def test_malformed_parameters_bodies_are_refused(body):
    with pytest.raises(FhirError) as caught:
        pairs_from_parameters(body)
    assert caught.value.status == 400


def test_element_entries_round_trip_through_their_stored_text():
    parsed = parse([("_elements", "Patient.name,id")])
    stored = parsed.as_json()["_elements"]
    assert stored == ["Patient.name", "id"]
    assert tuple(ElementSelection.from_text(text) for text in stored) == parsed.elements
