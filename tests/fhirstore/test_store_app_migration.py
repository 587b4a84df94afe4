"""The store's move to its own app keeps every row: a database made by the migrations of
before the move (the store inside exports) reads the same through fhirstore's models."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from fhirstore.models import CompartmentMembership, GroupMembership, Resource, ResourceIdentifier
from fhirstore.writes import put_resource

BEFORE = [("exports", "0004_export_job_last_resource_id"), ("fhirstore", None)]


@pytest.mark.django_db(transaction=True)
def test_rows_written_before_the_move_are_read_and_written_after_it() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE[:1]).apps
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    resources = old.get_model("exports", "Resource").objects
    patient = resources.create(
        resource_type="Patient", resource_id="p1", last_updated=when, body='{"value":11208.90}'
    )
    group = resources.create(resource_type="Group", resource_id="g1", last_updated=when, body="{}")
    old.get_model("exports", "CompartmentMembership").objects.create(
        resource=patient, resource_type="Patient", patient_id="p1"
    )
    old.get_model("exports", "GroupMembership").objects.create(group=group, patient_id="p1")
    old.get_model("exports", "ResourceIdentifier").objects.create(
        resource=patient, resource_type="Patient", system="urn:s", value="v"
    )
    ContentType.objects.get_or_create(app_label="exports", model="resource")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    moved = Resource.objects.get(resource_type="Patient", resource_id="p1")
    assert (moved.pk, moved.last_updated, moved.body) == (patient.pk, when, '{"value":11208.90}')
    assert list(GroupMembership.objects.active_in(["g1"]).values_list("patient_id", flat=True)) == [
        "p1"
    ]
    assert CompartmentMembership.objects.get().resource_id == patient.pk
    assert str(ResourceIdentifier.objects.get()) == "Patient?identifier=urn:s|v"
    assert ContentType.objects.filter(app_label="fhirstore", model="resource").exists()
    assert not ContentType.objects.filter(app_label="exports", model="resource").exists()
    # New rows continue the old id sequence and keep the indexes in step.
    put_resource(
        resource_type="Observation",
        resource_id="o1",
        body={"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/p1"}},
        now=when,
    )
    assert Resource.objects.get(resource_id="o1").pk > group.pk
    assert CompartmentMembership.objects.filter(patient_id="p1").count() == 2
