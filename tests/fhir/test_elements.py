from __future__ import annotations

from bulkops.fhir.elements import selected_elements, subset_resource
from bulkops.fhir.params import ElementSelection

OBSERVATION = {
    "resourceType": "Observation",
    "id": "o1",
    "meta": {"versionId": "1", "lastUpdated": "2024-01-01T00:00:00Z"},
    "status": "final",
    "statusReason": {"text": "kept only if asked"},
    "code": {"text": "BP"},
    "subject": {"reference": "Patient/p1"},
    "valueQuantity": {"value": 120},
    "note": [{"text": "secret"}],
}


def test_subset_keeps_listed_and_mandatory_elements_and_tags_subsetted():
    subset = subset_resource(OBSERVATION, frozenset({"subject"}))
    assert set(subset) == {"resourceType", "id", "meta", "status", "code", "subject"}
    assert {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
        "code": "SUBSETTED",
        "display": "subsetted",
    } in subset["meta"]["tag"]
    assert subset["meta"]["versionId"] == "1"


def test_choice_elements_match_their_typed_names_only():
    assert "valueQuantity" in subset_resource(OBSERVATION, frozenset({"value"}))
    assert "valueQuantity" in subset_resource(OBSERVATION, frozenset({"value[x]"}))
    assert "statusReason" not in subset_resource(OBSERVATION, frozenset({"value"}))


def test_entries_apply_to_their_type_or_to_all():
    selections = (ElementSelection("Patient", "name"), ElementSelection(None, "identifier"))
    assert selected_elements(selections, "Patient") == {"name", "identifier"}
    assert selected_elements(selections, "Observation") == {"identifier"}
    assert selected_elements((ElementSelection("Patient", "name"),), "Observation") is None


def test_subsetting_does_not_change_the_stored_resource():
    subset_resource(OBSERVATION, frozenset({"id"}))
    assert "note" in OBSERVATION and "tag" not in OBSERVATION["meta"]
