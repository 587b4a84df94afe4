from __future__ import annotations

from collections import Counter
from itertools import chain

from bulkops.fhir.compartment import compartment_patients
from bulkops.fhir.synthetic import SyntheticData


def generate(seed: int, patients: int) -> list[dict]:
    data = SyntheticData(seed=seed, group_name="g")
    resources = list(data.shared())
    resources += chain.from_iterable(data.patient() for _ in range(patients))
    return [*resources, data.group()]


def test_same_seed_gives_the_same_resources_and_another_seed_does_not():
    first, again, other = generate(3, 20), generate(3, 20), generate(4, 20)
    assert first == again
    assert {r["id"] for r in first}.isdisjoint({r["id"] for r in other})


def test_every_clinical_resource_is_in_exactly_its_patients_compartment():
    resources = generate(1, 5)
    patients = [r["id"] for r in resources if r["resourceType"] == "Patient"]
    clinical = [
        r
        for r in resources
        if r["resourceType"]
        not in ("Organization", "Location", "Practitioner", "Medication", "Group")
    ]
    assert all(len(compartment_patients(r)) == 1 for r in clinical)
    assert {next(iter(compartment_patients(r))) for r in clinical} == set(patients)


def test_patients_have_realistic_skewed_record_sizes_and_one_group_of_all():
    data = SyntheticData(seed=9, group_name="Cohort")
    list(data.shared())
    records = [list(data.patient()) for _ in range(200)]
    sizes = [len(record) for record in records]
    assert min(sizes) >= 70 and max(sizes) <= 340
    assert max(sizes) > 2 * min(sizes)
    types = Counter(r["resourceType"] for r in chain.from_iterable(records))
    assert types["Patient"] == 200
    assert {"Encounter", "Observation", "Condition", "Claim", "ExplanationOfBenefit"} <= set(types)
    group = data.group()
    assert group["name"] == "Cohort" and group["quantity"] == 200
