"""Rows stored before the store kept the references of each body (fhirstore 0006) have
none noted after it (exports search their bodies), until `fill_references` notes them
as a write of the same body would; rows written since are left as they are."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from fhirstore.models import Resource
from fhirstore.writes import minified, put_resource

BEFORE = [("fhirstore", "0005_compartment_index_without_redundant_checks")]
WHEN = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
ENCOUNTER = {
    "resourceType": "Encounter",
    "id": "e1",
    "subject": {"reference": "Patient/p1"},
    "participant": [{"individual": {"reference": "Practitioner/dr1"}}],
    "serviceProvider": {"reference": "Organization/o1/_history/2"},
}


@pytest.mark.django_db(transaction=True)
def test_rows_stored_before_get_the_references_a_write_of_them_keeps() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps.get_model("fhirstore", "Resource").objects
    for resource_type, resource_id, body in (
        ("Encounter", "e1", minified(ENCOUNTER)),
        ("Patient", "p1", minified({"resourceType": "Patient", "id": "p1"})),
    ):
        old.create(
            resource_type=resource_type, resource_id=resource_id, last_updated=WHEN, body=body
        )
    old.create(resource_type="Encounter", resource_id="e0", last_updated=WHEN, deleted=True)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert set(Resource.objects.values_list("refers_to", flat=True)) == {None}

    # Written by this release before the command runs: noted already, left alone.
    put_resource(
        resource_type="Encounter", resource_id="e2", body={**ENCOUNTER, "id": "e2"}, now=WHEN
    )
    call_command("fill_references", batch=2)
    noted = dict(Resource.objects.values_list("resource_id", "refers_to"))
    assert noted == {
        "e1": "Organization/o1 Practitioner/dr1",
        "p1": "",
        "e0": "",
        "e2": "Organization/o1 Practitioner/dr1",
    }


@pytest.mark.django_db
def test_a_batch_of_no_rows_is_refused_and_changes_nothing() -> None:
    put_resource(resource_type="Encounter", resource_id="e1", body=ENCOUNTER, now=WHEN)
    Resource.objects.update(refers_to=None)
    with pytest.raises(CommandError, match="--batch must be at least 1"):
        call_command("fill_references", batch=0)
    assert Resource.objects.get().refers_to is None
