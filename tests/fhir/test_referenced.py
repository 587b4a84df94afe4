"""Which referenced resources a Patient or Group export adds, found in the records it
writes: the bodies as the store keeps them (minified by fhirstore.writes.minified)."""

from __future__ import annotations

from bulkops.fhir.referenced import (
    REFERENCED_TYPES,
    indexed_keys,
    referenced_keys,
    stored_references,
)
from fhirstore.writes import minified

LONGEST_ID = "x" * 64


def records(*resources: dict) -> bytes:
    return b"\n".join(minified(resource).encode() for resource in resources)


ENCOUNTER = {
    "resourceType": "Encounter",
    "id": "e1",
    "subject": {"reference": "Patient/p1"},
    "participant": [
        {"individual": {"reference": "Practitioner/pr1"}},
        {"individual": {"reference": "PractitionerRole/role-1"}},
        {"individual": {"reference": "https://other.example/fhir/Practitioner/far"}},
        {"individual": {"reference": "Practitioner?identifier=http://npi|123"}},
    ],
    "location": [
        {"location": {"reference": "Location/l.1/_history/2"}},
        {"location": {"reference": f"Location/{LONGEST_ID}"}},
        {"location": {"reference": f"Location/{LONGEST_ID}y"}},  # too long to be an id
    ],
    "serviceProvider": {"reference": "Organization/o-1", "display": "Organization/o-2"},
}
REQUEST = {
    "resourceType": "MedicationRequest",
    "id": "m1",
    "contained": [{"resourceType": "Medication", "id": "med"}],
    "medicationReference": {"reference": "#med"},
    "requester": {"reference": "Practitioner/pr1"},
    "note": [{"text": 'quoted "reference":"Device/d9" in free text'}],
}


def test_relative_references_of_the_referenced_types_are_found_once():
    assert referenced_keys(records(ENCOUNTER, REQUEST), REFERENCED_TYPES) == {
        ("Practitioner", "pr1"),
        ("PractitionerRole", "role-1"),
        ("Location", "l.1"),
        ("Location", LONGEST_ID),
        ("Organization", "o-1"),
    }


def test_only_the_types_asked_for_are_returned():
    assert referenced_keys(records(ENCOUNTER), {"Practitioner"}) == {("Practitioner", "pr1")}
    assert referenced_keys(records(REQUEST), {"Medication", "Device"}) == set()


def test_what_the_store_keeps_of_a_body_finds_what_a_search_of_it_finds():
    kept = [stored_references(minified(resource)) for resource in (ENCOUNTER, REQUEST)]
    assert kept == [
        f"Location/l.1 Location/{LONGEST_ID} Organization/o-1 Practitioner/pr1"
        " PractitionerRole/role-1",
        "Practitioner/pr1",
    ]
    for types in (REFERENCED_TYPES, {"Practitioner"}, {"Device"}):
        searched = referenced_keys(records(ENCOUNTER, REQUEST), types)
        assert indexed_keys(" ".join(kept).encode(), types) == searched
    assert stored_references(minified({"resourceType": "Patient", "id": "p1"})) == ""
