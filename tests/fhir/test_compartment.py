from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from bulkops.fhir.compartment import (
    COMPARTMENT_TYPES,
    GroupMember,
    compartment_patients,
    group_members,
)
from bulkops.fhir.compartment_paths import PATIENT_COMPARTMENT_PATHS

DEFINITION = Path(__file__).parents[2] / "bulkops/fhir/data/CompartmentDefinition-patient.json"
NOW = datetime(2024, 6, 1, tzinfo=UTC)


def test_generated_table_covers_exactly_the_types_the_official_definition_lists():
    definition = json.loads(DEFINITION.read_text())
    assert definition["version"] == "4.0.1"
    listed = {r["code"] for r in definition["resource"] if r.get("param")}
    assert set(PATIENT_COMPARTMENT_PATHS) == listed


def test_observation_is_in_the_compartment_of_its_subject_and_patient_performer():
    observation = {
        "resourceType": "Observation",
        "subject": {"reference": "Patient/x"},
        "performer": [{"reference": "Patient/y"}, {"reference": "Practitioner/p"}],
    }
    assert compartment_patients(observation) == {"x", "y"}


def test_absolute_and_versioned_patient_references_count():
    encounter = {
        "resourceType": "Encounter",
        "subject": {"reference": "https://ehr.example.org/fhir/Patient/abs-1/_history/3"},
    }
    assert compartment_patients(encounter) == {"abs-1"}


def test_claim_and_eob_are_in_the_compartment_through_patient():
    for resource_type in ("Claim", "ExplanationOfBenefit"):
        body = {"resourceType": resource_type, "patient": {"reference": "Patient/c"}}
        assert compartment_patients(body) == {"c"}


def test_provenance_is_in_the_compartment_only_of_patient_targets():
    provenance = {
        "resourceType": "Provenance",
        "target": [{"reference": "Patient/p1"}, {"reference": "Observation/o1"}],
        "agent": [{"who": {"reference": "Practitioner/dr"}}],
    }
    assert compartment_patients(provenance) == {"p1"}


def test_a_patient_is_in_its_own_compartment_and_in_linked_patients_ones():
    patient = {
        "resourceType": "Patient",
        "id": "me",
        "link": [{"other": {"reference": "Patient/old"}}],
    }
    assert compartment_patients(patient) == {"me", "old"}


def test_practitioner_and_medication_are_in_no_compartment():
    assert compartment_patients({"resourceType": "Practitioner", "id": "p"}) == set()
    assert compartment_patients({"resourceType": "Medication", "id": "m"}) == set()


def test_a_device_is_indexed_with_its_patient_though_r4_leaves_it_out_of_the_compartment():
    device = {"resourceType": "Device", "patient": {"reference": "Patient/x"}}
    assert compartment_patients(device) == {"x"}
    assert "Device" not in COMPARTMENT_TYPES
    assert compartment_patients({"resourceType": "Device", "id": "d"}) == set()


def test_groups_are_never_compartment_data():
    group = {"resourceType": "Group", "member": [{"entity": {"reference": "Patient/x"}}]}
    assert "Group" not in COMPARTMENT_TYPES
    assert compartment_patients(group) == set()


def test_unresolved_urn_uuid_references_put_nothing_in_a_compartment():
    observation = {"resourceType": "Observation", "subject": {"reference": "urn:uuid:1234"}}
    assert compartment_patients(observation) == set()


def test_group_members_marks_inactive_and_ended_members_and_skips_non_patients():
    group = {
        "resourceType": "Group",
        "member": [
            {"entity": {"reference": "Patient/a"}},
            {"entity": {"reference": "Patient/b"}, "inactive": True},
            {"entity": {"reference": "Patient/c"}, "period": {"end": "2020-01-01"}},
            {"entity": {"reference": "Patient/d"}, "period": {"end": "2030-01-01T00:00:00Z"}},
            {"entity": {"reference": "Practitioner/x"}},
        ],
    }
    assert group_members(group, NOW) == [
        GroupMember("a", False),
        GroupMember("b", True),
        GroupMember("c", True),
        GroupMember("d", False),
    ]
