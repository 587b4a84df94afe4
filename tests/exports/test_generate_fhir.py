from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from fhirstore.models import CompartmentMembership, GroupMembership, Resource

pytestmark = pytest.mark.django_db


def generate(*args: str) -> str:
    out = StringIO()
    call_command("generate_fhir", *args, stdout=out)
    return out.getvalue()


def stored_keys() -> set[tuple[str, str]]:
    return set(Resource.objects.values_list("resource_type", "resource_id"))


def test_same_seed_gives_the_same_ids_and_counts():
    generate("--patients", "3", "--seed", "7")
    first = stored_keys()
    Resource.objects.all().delete()
    generate("--patients", "3", "--seed", "7")
    assert stored_keys() == first
    output = generate("--patients", "3", "--seed", "7")
    assert f"{len(first)} unchanged" in output
    generate("--patients", "3", "--seed", "8")
    assert len(stored_keys()) > len(first)


def test_generated_patients_have_compartments_and_one_group():
    generate("--patients", "4", "--seed", "1", "--group-name", "Demo cohort")
    patients = set(
        Resource.objects.filter(resource_type="Patient").values_list("resource_id", flat=True)
    )
    group = Resource.objects.get(resource_type="Group")
    assert '"name":"Demo cohort"' in group.body
    assert (
        set(GroupMembership.objects.filter(group=group).values_list("patient_id", flat=True))
        == patients
    )
    per_patient = [CompartmentMembership.objects.filter(patient_id=p).count() for p in patients]
    assert all(60 <= n <= 340 for n in per_patient)
    assert not CompartmentMembership.objects.filter(resource_type="Practitioner").exists()


def test_if_empty_seeds_only_an_empty_store():
    generate("--patients", "2", "--if-empty")
    count = Resource.objects.count()
    assert "already has data" in generate("--patients", "2", "--seed", "9", "--if-empty")
    assert Resource.objects.count() == count
