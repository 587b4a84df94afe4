"""Deterministic synthetic FHIR R4 data: linked patients at any scale.

Same `seed`, same resources: ids are uuid5 of (seed, kind, counter) and every choice comes
from one `random.Random(seed)`, with clinical dates counted back from a fixed day, so
benchmarks and tests can rely on ids and counts. A patient gets 100-300 resources, skewed
like real records (a few patients with many encounters): Encounters, each with vital-sign
Observations, Claim and ExplanationOfBenefit, sometimes a Condition, Procedure,
MedicationRequest, Immunization or DiagnosticReport; plus AllergyIntolerances and
CarePlans. Shared Organizations, Locations, Practitioners and Medications sit outside the
compartment, as in Synthea.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

NAMESPACE = uuid.UUID("0b6f3d36-3f8c-4c8e-9d0a-3a57d1c0b7a1")
CLINICAL_EPOCH = date(2024, 1, 1)  # the newest clinical date; never today
SHARED = {"Organization": 10, "Location": 10, "Practitioner": 50, "Medication": 30}
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
VITALS = [  # (LOINC code, display, unit, low, high)
    ("8302-2", "Body Height", "cm", 150.0, 195.0),
    ("29463-7", "Body Weight", "kg", 45.0, 120.0),
    ("8867-4", "Heart rate", "/min", 55.0, 100.0),
    ("9279-1", "Respiratory rate", "/min", 12.0, 20.0),
    ("8310-5", "Body temperature", "Cel", 36.1, 37.8),
    ("2339-0", "Glucose", "mg/dL", 70.0, 140.0),
]
CONDITIONS = [
    ("444814009", "Viral sinusitis (disorder)"),
    ("195662009", "Acute viral pharyngitis (disorder)"),
    ("44054006", "Diabetes mellitus type 2 (disorder)"),
    ("38341003", "Hypertensive disorder, systemic arterial (disorder)"),
    ("10509002", "Acute bronchitis (disorder)"),
]
PROCEDURES = [("430193006", "Medication Reconciliation"), ("710824005", "Assessment of health")]
FAMILY = ["Smith", "Garcia", "Nguyen", "Okafor", "Kowalski", "Haddad", "Silva", "Ito"]
GIVEN = ["Ana", "Ben", "Chloe", "Dev", "Emma", "Femi", "Grace", "Hugo", "Ines", "Jon"]


def ref(resource_type: str, resource_id: str) -> dict[str, str]:
    return {"reference": f"{resource_type}/{resource_id}"}


def concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


@dataclass
class SyntheticData:
    """Iterate `shared()`, then `patient()` per patient, then `group()`."""

    seed: int
    group_name: str
    rng: random.Random = field(init=False)
    counter: int = field(default=0, init=False)
    shared_ids: dict[str, list[str]] = field(default_factory=dict, init=False)
    patient_ids: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)  # noqa: S311 - reproducible test data, not secrets

    def new_id(self, kind: str) -> str:
        self.counter += 1
        return str(uuid.uuid5(NAMESPACE, f"{self.seed}/{kind}/{self.counter}"))

    def shared(self) -> Iterator[dict[str, Any]]:
        for resource_type, count in SHARED.items():
            ids = [self.new_id(resource_type) for _ in range(count)]
            self.shared_ids[resource_type] = ids
            for n, resource_id in enumerate(ids, start=1):
                yield self._shared_resource(resource_type, resource_id, n)

    def _shared_resource(self, resource_type: str, resource_id: str, n: int) -> dict[str, Any]:
        body: dict[str, Any] = {"resourceType": resource_type, "id": resource_id}
        if resource_type == "Organization":
            body.update(name=f"Synthetic Hospital {n}", active=True)
        elif resource_type == "Location":
            body.update(name=f"Synthetic Clinic {n}", status="active")
        elif resource_type == "Practitioner":
            body.update(
                identifier=[{"system": "http://hl7.org/fhir/sid/us-npi", "value": f"{n:010d}"}],
                name=[{"family": self.rng.choice(FAMILY), "given": [self.rng.choice(GIVEN)]}],
            )
        else:
            body["code"] = concept(
                "http://www.nlm.nih.gov/research/umls/rxnorm", str(300000 + n), f"Drug {n}"
            )
        return body

    def _pick(self, resource_type: str) -> dict[str, str]:
        return ref(resource_type, self.rng.choice(self.shared_ids[resource_type]))

    def patient(self) -> Iterator[dict[str, Any]]:
        rng = self.rng
        patient_id = self.new_id("Patient")
        self.patient_ids.append(patient_id)
        born = CLINICAL_EPOCH - timedelta(days=rng.randrange(365 * 18, 365 * 90))
        yield {
            "resourceType": "Patient",
            "id": patient_id,
            "identifier": [{"system": "urn:bulkops:synthetic", "value": patient_id}],
            "name": [
                {"use": "official", "family": rng.choice(FAMILY), "given": [rng.choice(GIVEN)]}
            ],
            "gender": rng.choice(["female", "male"]),
            "birthDate": born.isoformat(),
        }
        subject = ref("Patient", patient_id)
        for _ in range(rng.randrange(0, 3)):
            yield {
                "resourceType": "AllergyIntolerance",
                "id": self.new_id("AllergyIntolerance"),
                "code": concept(SNOMED, "300916003", "Latex allergy"),
                "patient": subject,
            }
        # Log-normal encounter counts: most patients have a dozen or so, a few many more.
        encounters = min(36, max(11, round(rng.lognormvariate(2.7, 0.45))))
        for _ in range(encounters):
            yield from self._encounter(subject)
        for _ in range(rng.randrange(0, 3)):
            yield {
                "resourceType": "CarePlan",
                "id": self.new_id("CarePlan"),
                "status": "active",
                "intent": "plan",
                "subject": subject,
            }

    def _encounter(self, subject: dict[str, str]) -> Iterator[dict[str, Any]]:
        rng = self.rng
        day = (CLINICAL_EPOCH - timedelta(days=rng.randrange(0, 3650))).isoformat()
        when = f"{day}T{rng.randrange(8, 18):02d}:00:00+00:00"
        encounter_id = self.new_id("Encounter")
        encounter = ref("Encounter", encounter_id)
        practitioner = self._pick("Practitioner")
        yield {
            "resourceType": "Encounter",
            "id": encounter_id,
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": subject,
            "participant": [{"individual": practitioner}],
            "period": {"start": when, "end": when},
            "location": [{"location": self._pick("Location")}],
            "serviceProvider": self._pick("Organization"),
        }
        clinical = {"subject": subject, "encounter": encounter}
        observation_ids = []
        for code, display, unit, low, high in rng.sample(VITALS, rng.randrange(2, 7)):
            observation_ids.append(self.new_id("Observation"))
            yield {
                "resourceType": "Observation",
                "id": observation_ids[-1],
                "status": "final",
                "code": concept(LOINC, code, display),
                **clinical,
                "effectiveDateTime": when,
                "valueQuantity": {"value": round(rng.uniform(low, high), 1), "unit": unit},
            }
        if rng.random() < 0.3:
            yield {
                "resourceType": "Condition",
                "id": self.new_id("Condition"),
                "code": concept(SNOMED, *rng.choice(CONDITIONS)),
                **clinical,
                "onsetDateTime": when,
            }
        if rng.random() < 0.3:
            yield {
                "resourceType": "Procedure",
                "id": self.new_id("Procedure"),
                "status": "completed",
                "code": concept(SNOMED, *rng.choice(PROCEDURES)),
                **clinical,
                "performedDateTime": when,
            }
        if rng.random() < 0.4:
            yield {
                "resourceType": "MedicationRequest",
                "id": self.new_id("MedicationRequest"),
                "status": "active",
                "intent": "order",
                "medicationReference": self._pick("Medication"),
                **clinical,
                "authoredOn": when,
                "requester": practitioner,
            }
        if rng.random() < 0.15:
            yield {
                "resourceType": "Immunization",
                "id": self.new_id("Immunization"),
                "status": "completed",
                "vaccineCode": concept("http://hl7.org/fhir/sid/cvx", "140", "Influenza"),
                "patient": subject,
                "encounter": encounter,
                "occurrenceDateTime": when,
            }
        if rng.random() < 0.3:
            yield {
                "resourceType": "DiagnosticReport",
                "id": self.new_id("DiagnosticReport"),
                "status": "final",
                "code": concept(LOINC, "51990-0", "Basic metabolic panel"),
                **clinical,
                "effectiveDateTime": when,
                "result": [ref("Observation", o) for o in observation_ids],
            }
        yield from self._billing(subject, encounter, when)

    def _billing(
        self, subject: dict[str, str], encounter: dict[str, str], when: str
    ) -> Iterator[dict[str, Any]]:
        claim_id = self.new_id("Claim")
        amount = {"value": round(self.rng.uniform(50, 900), 2), "currency": "USD"}
        kind = concept(
            "http://terminology.hl7.org/CodeSystem/claim-type", "professional", "Professional"
        )
        yield {
            "resourceType": "Claim",
            "id": claim_id,
            "status": "active",
            "type": kind,
            "use": "claim",
            "patient": subject,
            "created": when,
            "provider": self._pick("Organization"),
            "item": [{"sequence": 1, "encounter": [encounter]}],
            "total": amount,
        }
        yield {
            "resourceType": "ExplanationOfBenefit",
            "id": self.new_id("ExplanationOfBenefit"),
            "status": "active",
            "type": kind,
            "use": "claim",
            "patient": subject,
            "created": when,
            "claim": ref("Claim", claim_id),
            "outcome": "complete",
            "total": [{"category": {"text": "Submitted Amount"}, "amount": amount}],
        }

    def group(self) -> dict[str, Any]:
        """A Group of every patient generated so far; its id depends on the seed only."""
        return {
            "resourceType": "Group",
            "id": str(uuid.uuid5(NAMESPACE, f"{self.seed}/group")),
            "type": "person",
            "actual": True,
            "name": self.group_name,
            "quantity": len(self.patient_ids),
            "member": [{"entity": ref("Patient", p)} for p in self.patient_ids],
        }
