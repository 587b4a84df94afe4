"""Rows stored before the store kept the references of each body (fhirstore 0006) get
them as the store migrates: Patient and Group exports of data loaded earlier still add
the Practitioners, Organizations... it refers to."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from fhirstore.models import Resource
from fhirstore.writes import minified, put_resource

BEFORE = [("fhirstore", "0005_compartment_index_without_redundant_checks")]
ENCOUNTER = {
    "resourceType": "Encounter",
    "id": "e1",
    "subject": {"reference": "Patient/p1"},
    "participant": [{"individual": {"reference": "Practitioner/dr1"}}],
    "serviceProvider": {"reference": "Organization/o1/_history/2"},
}


@pytest.mark.django_db(transaction=True)
def test_rows_stored_before_keep_the_references_a_write_of_them_keeps() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps.get_model("fhirstore", "Resource").objects
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    old.create(
        resource_type="Encounter", resource_id="e1", last_updated=when, body=minified(ENCOUNTER)
    )
    patient = {"resourceType": "Patient", "id": "p1"}
    old.create(resource_type="Patient", resource_id="p1", last_updated=when, body=minified(patient))
    old.create(resource_type="Encounter", resource_id="e0", last_updated=when, deleted=True)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    kept = dict(Resource.objects.values_list("resource_id", "refers_to"))
    assert kept == {"e1": "Organization/o1 Practitioner/dr1", "p1": "", "e0": ""}
    put_resource(
        resource_type="Encounter", resource_id="e2", body={**ENCOUNTER, "id": "e2"}, now=when
    )
    assert Resource.objects.get(resource_id="e2").refers_to == kept["e1"]
