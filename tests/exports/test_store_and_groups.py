from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import AuditEvent
from fhirstore.groups import GroupError, delete_group, upsert_group
from fhirstore.models import CompartmentMembership, GroupMembership, Resource
from fhirstore.writes import StoreError, delete_resource, put_resource

pytestmark = pytest.mark.django_db
NOW = datetime(2024, 5, 1, tzinfo=UTC)


def put_patient(patient_id: str) -> Resource:
    body = {"resourceType": "Patient", "id": patient_id}
    return put_resource(resource_type="Patient", resource_id=patient_id, body=body, now=NOW)


def observation(subject: str) -> dict:
    return {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "subject": {"reference": f"Patient/{subject}"},
    }


def compartment_of(resource: Resource) -> set[str]:
    return set(resource.compartments.values_list("patient_id", flat=True))


def test_put_stamps_meta_and_same_content_keeps_the_version():
    first = put_resource(
        resource_type="Observation", resource_id="o1", body=observation("a"), now=NOW
    )
    body = json.loads(first.body)
    assert body["meta"] == {"versionId": "1", "lastUpdated": "2024-05-01T00:00:00.000Z"}
    assert first.body == json.dumps(body, separators=(",", ":"))  # minified
    again = put_resource(
        resource_type="Observation", resource_id="o1", body=body, now=NOW + timedelta(days=1)
    )
    assert (again.version_id, again.body) == (1, first.body)


def test_changing_the_subject_moves_the_resource_to_the_new_compartment():
    first = put_resource(
        resource_type="Observation", resource_id="o1", body=observation("a"), now=NOW
    )
    assert compartment_of(first) == {"a"}
    moved = put_resource(
        resource_type="Observation", resource_id="o1", body=observation("b"), now=NOW
    )
    assert moved.version_id == 2 and compartment_of(moved) == {"b"}


def test_delete_leaves_a_tombstone_that_stays_in_its_patients_compartment():
    put_resource(resource_type="Observation", resource_id="o1", body=observation("a"), now=NOW)
    assert delete_resource(resource_type="Observation", resource_id="o1", now=NOW)
    tombstone = Resource.objects.get(resource_id="o1")
    assert tombstone.deleted and tombstone.version_id == 2 and tombstone.body == ""
    # Patient/Group `_since` exports find the deletion through the compartment index.
    assert list(CompartmentMembership.objects.values_list("resource_id", "patient_id")) == [
        (tombstone.pk, "a")
    ]
    assert not delete_resource(resource_type="Observation", resource_id="o1", now=NOW)


def test_store_refuses_bad_types_and_ids():
    with pytest.raises(StoreError, match="unknown resource type"):
        put_resource(
            resource_type="Thing", resource_id="x", body={"resourceType": "Thing"}, now=NOW
        )
    with pytest.raises(StoreError, match="invalid id"):
        put_resource(
            resource_type="Patient", resource_id="a b", body={"resourceType": "Patient"}, now=NOW
        )
    assert not Resource.objects.exists()


def test_upsert_group_keeps_membership_and_audits():
    for patient_id in ("a", "b", "c"):
        put_patient(patient_id)
    group = upsert_group(group_id=None, name="Cohort", patient_ids=["a", "b"], actor="ada")
    assert set(
        GroupMembership.objects.filter(group=group).values_list("patient_id", flat=True)
    ) == {"a", "b"}
    assert not group.compartments.exists()  # groups are never compartment data
    upsert_group(group_id=group.resource_id, name="Cohort", patient_ids=["b", "c"], actor="ada")
    assert set(GroupMembership.objects.values_list("patient_id", flat=True)) == {"b", "c"}
    body = json.loads(Resource.objects.get(pk=group.pk).body)
    assert body["quantity"] == 2 and body["meta"]["versionId"] == "2"
    events = AuditEvent.objects.filter(action="group.upserted", actor="ada")
    assert events.count() == 2 and events.first().details["group"] == group.resource_id


def test_upsert_group_with_unknown_patient_changes_nothing():
    put_patient("a")
    with pytest.raises(GroupError, match="no such patients: ghost"):
        upsert_group(group_id="g1", name="Cohort", patient_ids=["a", "ghost"], actor="ada")
    assert not Resource.objects.filter(resource_type="Group").exists()
    assert not AuditEvent.objects.exists()


def test_delete_group_removes_membership_and_audits():
    put_patient("a")
    upsert_group(group_id="g1", name="Cohort", patient_ids=["a"], actor="ada")
    delete_group(group_id="g1", actor="bob")
    assert Resource.objects.get(resource_id="g1").deleted
    assert not GroupMembership.objects.exists()
    assert AuditEvent.objects.filter(action="group.deleted", actor="bob").exists()
    with pytest.raises(GroupError, match="no such group"):
        delete_group(group_id="g1", actor="bob")
