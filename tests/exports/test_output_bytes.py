"""Export files hold the stored bodies byte for byte: each type's files, in their order,
are its stored bodies in store order, one a line, whatever the partitions and file
rotation, for a system export (the one pass and the small types' own partitions) and
for a Group export (its compartment pass and its referenced resources)."""

from __future__ import annotations

import pytest

from bulkops.fhir import resource_json
from exports.models import ExportJob
from exports.storage import get_storage
from fhirstore.models import Resource
from fhirstore.writes import put_resource
from tests.exports.test_export_lifecycle import accepted_job, finished_group_job, run_all

pytestmark = pytest.mark.django_db

# What a re-serialising writer would change: a decimal's trailing zero and digits past
# a float's, an escaped quote and slash, a character outside ASCII.
EXACT = (
    '{"resourceType":"Observation","id":"%s","status":"final",'
    '"code":{"text":"Gewicht \\"netto\\" \\/ \\u00e9t\\u00e9 é"},'
    '"subject":{"reference":"Patient/%s"},"performer":[{"reference":"Practitioner/dr1"}],'
    '"valueQuantity":{"value":11208.90,"unit":"kg"},'
    '"component":[{"valueQuantity":{"value":1.000000000000000000001}}]}'
)


@pytest.fixture
def exact_store(store):
    for pid in ("p1", "p2", "p3"):
        oid = f"{pid}-exact"
        put_resource(
            resource_type="Observation",
            resource_id=oid,
            body=resource_json.loads(EXACT % (oid, pid)),
            now=store["written"],
        )
    return store


def output_by_type(job: ExportJob) -> dict[str, bytes]:
    """Each type's output files joined in key order (partition, then file number)."""
    storage = get_storage()
    joined: dict[str, bytes] = {}
    for file in job.files.filter(kind="output").order_by("storage_key"):
        with storage.open_reader(file.storage_key) as handle:
            joined[file.resource_type] = joined.get(file.resource_type, b"") + handle.read()
    return joined


def stored_bytes(rows) -> dict[str, bytes]:
    expected: dict[str, bytes] = {}
    for resource_type, body in rows.order_by("pk").values_list("resource_type", "body"):
        expected[resource_type] = expected.get(resource_type, b"") + body.encode() + b"\n"
    return expected


def test_a_system_export_writes_the_stored_bytes(client_a, exact_store, settings):
    settings.BULKOPS_PARTITION_SIZE = 4
    settings.BULKOPS_MAX_RESOURCES_PER_FILE = 2
    job = accepted_job(client_a)
    run_all(job)
    assert job.status == ExportJob.Status.COMPLETED
    # A pass over ranges of the table, and small types read by partitions of their own.
    assert job.partitions.filter(resource_type="*").count() > 1
    assert job.partitions.filter(resource_type="+").count() > 1
    written = output_by_type(job)
    assert written == stored_bytes(Resource.objects.filter(deleted=False))
    assert b'"value":11208.90,' in written["Observation"]
    assert b"1.000000000000000000001}" in written["Observation"]


def test_a_group_export_writes_the_stored_bytes(client_a, exact_store, settings):
    settings.BULKOPS_PARTITION_SIZE = 3
    settings.BULKOPS_MAX_RESOURCES_PER_FILE = 2
    job = finished_group_job(client_a)
    assert job.status == ExportJob.Status.COMPLETED
    members = Resource.objects.filter(deleted=False, compartments__patient_id__in=["p1", "p2"])
    expected = stored_bytes(members.distinct())
    expected |= stored_bytes(Resource.objects.filter(resource_type="Practitioner"))
    assert output_by_type(job) == expected
