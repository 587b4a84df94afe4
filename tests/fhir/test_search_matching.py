"""The search engine per parameter type and modifier, on resources written for each case
(R4 search.html rules; the expectations are worked out by hand in the comments)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bulkops.fhir.search import parse_type_search

NOW = datetime(2025, 1, 1, tzinfo=UTC)

OBSERVATION = {
    "resourceType": "Observation",
    "id": "o1",
    "meta": {
        "lastUpdated": "2024-05-01T12:00:00.000Z",
        "tag": [{"system": "http://example.org/tags", "code": "study-7"}],
        "security": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
        ],
        "profile": ["http://hl7.org/fhir/StructureDefinition/heartrate|4.0.1"],
        "source": "http://lab.example.org/feed#42",
    },
    "status": "final",
    "category": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "vital-signs",
                    "display": "Vital Signs",
                }
            ]
        }
    ],
    "code": {
        "coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}],
        "text": "Pulse (resting)",
    },
    "subject": {"reference": "Patient/p1"},
    "performer": [{"reference": "https://other.example/fhir/Practitioner/dr9"}],
    "effectiveDateTime": "2024-03-10T23:30:00-02:00",  # 2024-03-11T01:30:00Z
    "valueQuantity": {
        "value": 72.5,
        "unit": "beats/min",
        "system": "http://unitsofmeasure.org",
        "code": "/min",
    },
}

PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "active": True,
    "identifier": [
        {
            "system": "http://hospital.example/mrn",
            "value": "MRN-001",
            "type": {"text": "Medical record"},
        }
    ],
    "name": [{"family": "Núñez-Smith", "given": ["José", "Ana"]}],
    "telecom": [{"system": "email", "value": "jose@example.org"}],
    "gender": "male",
    "birthDate": "1980-07",
    "address": [{"line": ["1 Main St"], "city": "São Paulo", "country": "BR"}],
}

ENCOUNTER = {
    "resourceType": "Encounter",
    "id": "e1",
    "status": "finished",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
    "subject": {"reference": "Patient/p1"},
    "period": {"start": "2024-01-01T22:00:00Z", "end": "2024-01-02T02:00:00Z"},
}

OPEN_ENCOUNTER = {**ENCOUNTER, "id": "e2", "period": {"start": "2023-12-30"}}

RISK = {
    "resourceType": "RiskAssessment",
    "id": "r1",
    "status": "final",
    "subject": {"reference": "Patient/p1"},
    "prediction": [{"probabilityDecimal": 0.25}],
}

CARE_PLAN = {
    "resourceType": "CarePlan",
    "id": "cp1",
    "status": "active",
    "intent": "plan",
    "subject": {"reference": "Patient/p1"},
    "activity": [
        {
            "detail": {
                "status": "scheduled",
                "scheduledTiming": {
                    "event": ["2024-02-01T08:00:00Z", "2024-02-10T08:00:00Z"],
                    "repeat": {"frequency": 1, "period": 3, "periodUnit": "d"},
                },
            }
        }
    ],
}

PROCEDURE = {
    "resourceType": "Procedure",
    "id": "pr1",
    "status": "completed",
    "subject": {"reference": "Patient/p1"},
    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "430193006"}]},
    "performedPeriod": {"start": "2022-06-22T12:31:08-04:00", "end": "2022-06-22T12:46:08-04:00"},
}


def matches(query: str, resource: dict) -> bool:
    return parse_type_search(query, now=NOW, base_url="https://bulkops.example/fhir").matches(
        resource
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Observation?code=8867-4", True),  # code alone: any system
        ("Observation?code=http://loinc.org|8867-4", True),
        ("Observation?code=http://snomed.info/sct|8867-4", False),
        ("Observation?code=|8867-4", False),  # |code: the coding must have no system
        ("Observation?code=http://loinc.org|", True),  # system|: any code of it
        ("Observation?code=8867-4X", False),
        ("Observation?code=8867-4,1234-5", True),  # values are OR-ed
        ("Observation?code=1234-5,5678-9", False),
        ("Observation?category=vital-signs", True),
        ("Observation?status=final", True),  # a primitive code
        ("Observation?status=http://hl7.org/fhir/observation-status|final", True),
        ("Observation?status=Final", False),  # codes are case-sensitive
        ("Observation?code:not=1234-5", True),
        ("Observation?code:not=8867-4", False),
        ("Observation?code:text=rest", True),  # a word of CodeableConcept.text
        ("Observation?code:text=PULSE", True),
        ("Observation?code:text=heart rate", True),  # Coding.display
        ("Observation?code:text=ulse", False),  # word starts only
        ("Observation?_tag=http://example.org/tags|study-7", True),
        ("Observation?_tag=study-8", False),
        ("Observation?_security=R", True),
        ("Observation?_id=o1", True),
        ("Observation?_id=o2,o3", False),
    ],
)
def test_token(query, expected):
    assert matches(query, OBSERVATION) is expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Patient?identifier=http://hospital.example/mrn|MRN-001", True),
        ("Patient?identifier=MRN-001", True),
        ("Patient?identifier=http://other.example|MRN-001", False),
        ("Patient?identifier:text=medical", True),  # Identifier.type.text
        ("Patient?active=true", True),  # a boolean
        ("Patient?active=false", False),
        ("Patient?email=jose@example.org", True),  # a ContactPoint's value
        ("Patient?gender=male", True),
        ("Patient?gender:not=female", True),
        ("Patient?deceased=false", True),  # R4's expression: exists() and != false
    ],
)
def test_token_on_identifiers_booleans_and_contact_points(query, expected):
    assert matches(query, PATIENT) is expected


def test_token_not_also_matches_resources_without_a_value():
    assert matches("Observation?data-absent-reason:not=masked", OBSERVATION)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Patient?family=nunez", True),  # starts with; accents and case ignored
        ("Patient?family=NÚÑEZ-SMITH", True),
        ("Patient?family=smith", False),  # not a start
        ("Patient?family:contains=smith", True),
        ("Patient?family:exact=Núñez-Smith", True),
        ("Patient?family:exact=Nunez-Smith", False),  # exact keeps accents and case
        ("Patient?name=ana", True),  # any part of a HumanName
        ("Patient?name=jose", True),
        ("Patient?given=josé,zed", True),
        ("Patient?address-city=sao", True),
        ("Patient?address=main", False),  # the line starts with "1 Main"
        ("Patient?address:contains=main", True),
        ("Patient?address-country=br", True),
    ],
)
def test_string(query, expected):
    assert matches(query, PATIENT) is expected


# The observation's effective[x] is the second 2024-03-11T01:30:00Z.
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Observation?date=2024", True),  # eq: the year contains the second
        ("Observation?date=2024-03", True),
        ("Observation?date=2024-03-11", True),  # in UTC it is the 11th
        ("Observation?date=2024-03-10", False),
        ("Observation?date=2024-03-10T23:30:00-02:00", True),
        ("Observation?date=2024-03-11T01:30", True),  # minute precision
        ("Observation?date=ne2024-03-10", True),
        ("Observation?date=gt2024-03-10", True),
        ("Observation?date=gt2024-03-11", False),  # not above the day of the 11th
        ("Observation?date=ge2024-03-11", True),  # contained in the day
        ("Observation?date=lt2024-03-12", True),
        ("Observation?date=lt2024-03-11", False),
        ("Observation?date=le2024-03-11", True),
        ("Observation?date=sa2024-03-10", True),
        ("Observation?date=sa2024-03-11", False),
        ("Observation?date=eb2024-04", True),
        ("Observation?date=eb2024-03", False),
        # ap: 10% of the distance from the search date to now. 2024-03-01 is 306 days
        # before 2025-01-01, so the day widens by 30.6 days either way.
        ("Observation?date=ap2024-03-01", True),
        ("Observation?date=ap2024-01-01", False),  # 366 days away: 36.6 days' margin
        ("Observation?date=ge2024-01-01&date=lt2025-01-01", True),  # AND of two criteria
        ("Observation?date=ge2025-01-01,lt2024-01-01", False),  # OR of two values
        ("Observation?_lastUpdated=gt2024-04-30", True),
        ("Observation?_lastUpdated=le2024-05-01T11:59:59Z", False),
    ],
)
def test_date_on_a_date_time(query, expected):
    assert matches(query, OBSERVATION) is expected


# The encounter is the period 2024-01-01T22:00Z .. 2024-01-02T02:00Z.
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Encounter?date=2024-01", True),
        ("Encounter?date=2024-01-01", False),  # the day does not contain the period
        ("Encounter?date=ge2024-01-01", True),  # it runs past the 1st
        ("Encounter?date=gt2024-01-02", False),
        ("Encounter?date=le2024-01-02", True),
        ("Encounter?date=lt2024-01-01", False),
        ("Encounter?date=sa2023", True),
        ("Encounter?date=eb2024-01-02", False),  # it overlaps the 2nd
        ("Encounter?date=ap2024-01-02", True),
    ],
)
def test_date_on_a_period(query, expected):
    assert matches(query, ENCOUNTER) is expected


def test_date_on_an_open_period_runs_to_the_end_of_time():
    assert matches("Encounter?date=gt2099", OPEN_ENCOUNTER)
    assert not matches("Encounter?date=lt2023-12-30", OPEN_ENCOUNTER)


def test_date_on_a_timing_covers_its_first_to_its_last_event():
    # CarePlan activity-date is activity.detail.scheduled[x]; a Timing's schedule is
    # ignored, only its outer limits count (R4 search.html#date).
    assert matches("CarePlan?activity-date=2024-02", CARE_PLAN)
    assert matches("CarePlan?activity-date=ge2024-02-05", CARE_PLAN)  # runs to the 10th
    assert not matches("CarePlan?activity-date=2024-02-05", CARE_PLAN)
    assert not matches("CarePlan?activity-date=lt2024-02-01", CARE_PLAN)


def test_date_on_a_date_time_in_another_zone_is_compared_in_utc():
    # 12:31:08-04:00 is 16:31:08Z, still the 22nd.
    assert matches("Procedure?date=2022-06-22", PROCEDURE)
    assert matches(
        "Procedure?date=2022-06-22T16:31:08Z",
        {**PROCEDURE, "performedPeriod": None, "performedDateTime": "2022-06-22T12:31:08-04:00"},
    )


def test_date_on_a_date_is_the_whole_month_or_day_it_names():
    assert matches("Patient?birthdate=1980", PATIENT)
    assert matches("Patient?birthdate=1980-07", PATIENT)
    assert not matches("Patient?birthdate=1980-07-04", PATIENT)  # a month is not in a day
    assert matches("Patient?birthdate=ge1980-07-04", PATIENT)  # it runs past the 4th


# valueQuantity is 72.5 /min (unit "beats/min").
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Observation?value-quantity=72.5", True),
        ("Observation?value-quantity=72", False),  # [71.5, 72.5)
        ("Observation?value-quantity=73", True),  # [72.5, 73.5)
        ("Observation?value-quantity=72.50", True),  # [72.495, 72.505)
        ("Observation?value-quantity=gt72", True),
        ("Observation?value-quantity=gt72.5", False),
        ("Observation?value-quantity=ge72.5", True),
        ("Observation?value-quantity=lt80", True),
        ("Observation?value-quantity=le72.4", False),
        ("Observation?value-quantity=ne72.5", False),
        ("Observation?value-quantity=ap80", True),  # [72, 88]
        ("Observation?value-quantity=ap70", True),  # [63, 77]
        ("Observation?value-quantity=ap65", False),  # [58.5, 71.5]
        ("Observation?value-quantity=72.5|http://unitsofmeasure.org|/min", True),
        ("Observation?value-quantity=72.5|http://unitsofmeasure.org|/s", False),
        ("Observation?value-quantity=72.5|http://other.org|/min", False),
        ("Observation?value-quantity=72.5||/min", True),  # the code
        ("Observation?value-quantity=72.5||beats/min", True),  # or the unit
        ("Observation?value-quantity=gt70||kg", False),
    ],
)
def test_quantity(query, expected):
    assert matches(query, OBSERVATION) is expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("RiskAssessment?probability=0.25", True),
        ("RiskAssessment?probability=0.2", False),  # [0.15, 0.25)
        ("RiskAssessment?probability=0.3", True),  # [0.25, 0.35)
        ("RiskAssessment?probability=gt0.2", True),
        ("RiskAssessment?probability=lt0.25", False),
        ("RiskAssessment?probability=le0.25", True),
        ("RiskAssessment?probability=2.5e-1", True),
        ("RiskAssessment?probability=ne0.25", False),
    ],
)
def test_number(query, expected):
    assert matches(query, RISK) is expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Observation?subject=Patient/p1", True),
        ("Observation?subject=p1", True),  # an id alone: any type
        ("Observation?subject:Patient=p1", True),
        ("Observation?subject:Group=p1", False),
        ("Observation?subject=Patient/p2", False),
        ("Observation?patient=p1", True),  # subject.where(resolve() is Patient)
        ("Observation?subject=https://bulkops.example/fhir/Patient/p1", True),  # this server
        ("Observation?performer=https://other.example/fhir/Practitioner/dr9", True),
        ("Observation?performer=Practitioner/dr9", False),  # another server's
        ("Observation?performer=dr9", False),
    ],
)
def test_reference(query, expected):
    assert matches(query, OBSERVATION) is expected


def test_patient_parameter_keeps_only_references_to_patients():
    to_group = {**OBSERVATION, "subject": {"reference": "Group/p1"}}
    assert not matches("Observation?patient=p1", to_group)
    assert matches("Observation?subject=p1", to_group)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Observation?_profile=http://hl7.org/fhir/StructureDefinition/heartrate", True),
        ("Observation?_profile=http://hl7.org/fhir/StructureDefinition/heartrate|4.0.1", True),
        ("Observation?_profile=http://hl7.org/fhir/StructureDefinition/heart", False),
        ("Observation?_profile:below=http://hl7.org/fhir/StructureDefinition/", True),
        ("Observation?_source=http://lab.example.org/feed#42", True),
        ("Observation?_source:above=http://lab.example.org/feed#42/more", True),
        ("Observation?_source=http://lab.example.org/feed", False),
    ],
)
def test_uri(query, expected):
    assert matches(query, OBSERVATION) is expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Observation?value-quantity:missing=false", True),
        ("Observation?value-quantity:missing=true", False),
        ("Observation?focus:missing=true", True),
        ("Observation?date:missing=false", True),
        ("Observation?code:missing=true", False),
        ("Patient?birthdate:missing=false", True),
        ("Patient?death-date:missing=true", True),
    ],
)
def test_missing_on_every_type(query, expected):
    resource = PATIENT if query.startswith("Patient") else OBSERVATION
    assert matches(query, resource) is expected


def test_escaped_commas_and_bars_are_part_of_the_value():
    odd = {**OBSERVATION, "code": {"coding": [{"system": "urn:x", "code": "a,b|c"}]}}
    assert matches(r"Observation?code=urn:x|a\,b\|c", odd)
    assert not matches("Observation?code=a", odd)


def test_malformed_values_in_a_resource_match_nothing_instead_of_failing():
    broken = {**OBSERVATION, "code": "not a CodeableConcept", "effectiveDateTime": "soon"}
    assert not matches("Observation?code=8867-4", broken)
    assert not matches("Observation?date=2024", broken)
    assert matches("Observation?date:missing=false", broken)  # a value, just not a date


def test_choice_types_are_read_from_every_item_not_only_a_single_one():
    # R4 writes `Observation.component.value as Quantity`; FHIRPath's `as` takes one
    # item, so a blood pressure's two components must not make the search fail.
    pressure = {
        **OBSERVATION,
        "component": [
            {"code": {"text": "diastolic"}, "valueQuantity": {"value": 84}},
            {"code": {"text": "systolic"}, "valueQuantity": {"value": 121}},
            {"code": {"text": "note"}, "valueString": "sitting"},
        ],
    }
    assert matches("Observation?component-value-quantity=gt120", pressure)
    assert matches("Observation?component-value-quantity=84", pressure)
    assert not matches("Observation?component-value-quantity=100", pressure)
