"""The search engine on the shared Synthea data (../shared/data/synthea): each count
below was worked out by reading the files with plain JSON code, not with the engine."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bulkops.fhir.search import parse_type_search
from tests.shared_data import needs_synthea, synthea_bundle_resources, synthea_ndjson

pytestmark = needs_synthea

NOW = datetime(2025, 1, 1, tzinfo=UTC)
DECEASED = "129c6ac7-8d06-89de-ad63-0204a93e76c3"  # died 1989
PATIENT_8E1A = "8e1a0a7c-e308-444b-075a-3c2b1f60f881"


def count(query: str, resources: list[dict]) -> int:
    search = parse_type_search(query, now=NOW)
    return sum(search.matches(resource) for resource in resources)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # 47 of the 218 Conditions have clinicalStatus active, 171 resolved.
        ("Condition?clinical-status=active", 47),
        ("Condition?clinical-status=resolved", 171),
        (
            "Condition?clinical-status=http://terminology.hl7.org/CodeSystem/condition-clinical|active",
            47,
        ),
        ("Condition?clinical-status:not=active", 171),
        ("Condition?clinical-status=active,resolved", 218),
        # The active ones are exactly those without abatementDateTime.
        ("Condition?abatement-date:missing=true", 47),
        (f"Condition?clinical-status=active&subject=Patient/{PATIENT_8E1A}", 6),
        (f"Condition?clinical-status=active&patient={PATIENT_8E1A}", 6),
        ("Condition?onset-date=lt1990", 64),
        ("Condition?code:text=prediabetes", 2),
    ],
)
def test_conditions(query, expected):
    assert count(query, synthea_ndjson("Condition")) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # 7 of 559 MedicationRequests are active, 552 stopped; all are orders.
        ("MedicationRequest?status=active", 7),
        ("MedicationRequest?status=stopped", 552),
        ("MedicationRequest?intent=order&status=active", 7),
        # RxNorm 583214 (PACLitaxel 100 MG Injection) is ordered 221 times.
        ("MedicationRequest?code=http://www.nlm.nih.gov/research/umls/rxnorm|583214", 221),
        ("MedicationRequest?code=583214,1736854", 442),
    ],
)
def test_medication_requests(query, expected):
    assert count(query, synthea_ndjson("MedicationRequest")) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Periods: 31 of 259 Encounters end after 2021-01-01 (all start in 2021 or later).
        ("Encounter?date=ge2021-01-01", 31),
        ("Encounter?date=lt2021-01-01", 228),
        # 15 ambulatory encounters lie wholly within 2015 (UTC).
        ("Encounter?class=AMB&date=2015", 15),
        ("Encounter?class=EMER,IMP", 56),
        (f"Encounter?subject={PATIENT_8E1A}", 33),
    ],
)
def test_encounters(query, expected):
    assert count(query, synthea_ndjson("Encounter")) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Immunization?vaccine-code=http://hl7.org/fhir/sid/cvx|140", 49),
        ("Immunization?date=ge2020-01-01", 23),
    ],
)
def test_immunizations(query, expected):
    assert count(query, synthea_ndjson("Immunization")) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Patient?gender=female", 4),
        ("Patient?birthdate=lt1970", 3),  # 1927, 1960 and 1963
        ("Patient?birthdate=ge1990&gender=male", 1),  # 1995
        ("Patient?deceased=true", 1),
        ("Patient?family=medhurst", 1),  # "Medhurst46"
        ("Patient?family:exact=Medhurst46", 1),
        ("Patient?family:exact=medhurst46", 0),
        ("Patient?name:contains=hurst", 1),
        ("Patient?address-city=olathe", 1),
        ("Patient?address-state=KS", 6),
        ("Patient?phone=555-810-7203", 1),
        (f"Patient?_id={DECEASED},{PATIENT_8E1A}", 2),
    ],
)
def test_patients(query, expected):
    assert count(query, synthea_ndjson("Patient")) == expected


def test_practitioners_and_documents():
    assert (
        count(
            "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|",
            synthea_ndjson("Practitioner"),
        )
        == 43
    )
    assert (
        count(
            "DocumentReference?type=http://loinc.org|34111-5", synthea_ndjson("DocumentReference")
        )
        == 65
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # The two patient Bundles hold 65 Observations: 38 vital signs, 22 lab, 5 survey.
        ("Observation?category=vital-signs", 38),
        ("Observation?category=laboratory", 22),
        ("Observation?category:not=survey", 60),
        # Body height 8302-2: 178.8, 179.2, 179.4, 179.4 and 57.9 cm.
        ("Observation?code=8302-2&value-quantity=179.4", 2),  # [179.35, 179.45)
        ("Observation?code=8302-2&value-quantity=179", 4),  # [178.5, 179.5)
        ("Observation?code=8302-2&value-quantity=gt179|http://unitsofmeasure.org|cm", 3),
        ("Observation?code=8302-2&value-quantity=ap180||cm", 4),  # [162, 198]
        # Body weight 29463-7: 77.8, 77.5, 81.9, 86.8 and 5 kg.
        ("Observation?code=29463-7&value-quantity=le80||kg", 3),
        ("Observation?code=29463-7&date=ge2014", 3),  # 2014, 2017, 2020
        ("Observation?value-quantity:missing=true", 10),  # blood pressure and smoking status
        ("Observation?component-value-quantity=gt120", 1),  # systolic 121
    ],
)
def test_observations_from_bundles(query, expected):
    assert count(query, synthea_bundle_resources("Observation")) == expected
