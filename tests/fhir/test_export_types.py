from __future__ import annotations

import pytest

from bulkops.fhir.export_types import plan_export_types
from bulkops.fhir.outcome import FhirError
from bulkops.fhir.scopes import readable_types
from bulkops.fhir.text import plain_list

COMPARTMENT = {"Patient", "Observation", "Condition", "Encounter"}
ALL = readable_types(["system/*.read"])
PATIENT_ONLY = readable_types(["system/Patient.read"])


def test_dropped_types_get_a_plain_language_warning():
    plan = plan_export_types(
        level="system",
        requested=["Patient", "Observation", "Condition"],
        level_types=COMPARTMENT | {"Practitioner"},
        access=PATIENT_ONLY,
    )
    assert plan.types == ("Patient",)
    assert plan.warnings == (
        "Observation and Condition were requested but this client's token only grants "
        "system/Patient.read; they were left out of this export.",
    )


def test_without_type_the_scopes_narrow_silently():
    plan = plan_export_types(
        level="patient",
        requested=None,
        level_types=COMPARTMENT,
        access=readable_types(["system/Patient.rs", "system/Encounter.rs"]),
    )
    assert plan.types == ("Encounter", "Patient")
    assert plan.warnings == ()


def test_nothing_readable_is_403_naming_request_and_grant():
    with pytest.raises(FhirError) as caught:
        plan_export_types(
            level="system", requested=["Observation"], level_types=COMPARTMENT, access=PATIENT_ONLY
        )
    assert caught.value.status == 403
    assert caught.value.diagnostics == (
        "Observation was requested but this client's token only grants system/Patient.read; "
        "nothing is left to export."
    )


def test_no_readable_type_at_the_level_is_403_even_without_type():
    with pytest.raises(FhirError) as caught:
        plan_export_types(
            level="patient",
            requested=None,
            level_types=COMPARTMENT,
            access=readable_types(["system/Practitioner.read"]),
        )
    assert caught.value.status == 403
    assert "system/Practitioner.read" in caught.value.diagnostics


def test_patient_level_refuses_only_non_compartment_types_and_warns_on_a_mix():
    with pytest.raises(FhirError) as caught:
        plan_export_types(
            level="patient", requested=["Practitioner"], level_types=COMPARTMENT, access=ALL
        )
    assert caught.value.status == 400
    plan = plan_export_types(
        level="group", requested=["Practitioner", "Patient"], level_types=COMPARTMENT, access=ALL
    )
    assert plan.types == ("Patient",)
    assert "Practitioner was requested but is not in the Patient compartment" in plan.warnings[0]


def test_plain_list():
    assert plain_list(["A"]) == "A"
    assert plain_list(["A", "B", "C"]) == "A, B and C"


def test_types_named_only_by_type_filter_are_explained_when_dropped():
    plan = plan_export_types(
        level="patient",
        requested=None,
        level_types=COMPARTMENT,
        access=PATIENT_ONLY,
        filtered=["Observation", "Practitioner", "Observation"],
    )
    assert plan.types == ("Patient",)
    assert plan.warnings == (
        "Practitioner was requested but is not in the Patient compartment, so this "
        "Patient-level export left it out.",
        "Observation was requested but this client's token only grants "
        "system/Patient.read; it was left out of this export.",
    )


def test_a_filtered_type_the_scopes_cover_adds_no_warning():
    plan = plan_export_types(
        level="system", requested=None, level_types=COMPARTMENT, access=ALL, filtered=["Patient"]
    )
    assert plan.warnings == ()
