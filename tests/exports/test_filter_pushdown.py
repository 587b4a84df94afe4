"""The database narrows filtered types but never decides alone: for every criterion it
can check, the rows it keeps include every row the search engine matches, and it does
leave rows out."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bulkops.fhir.type_filters import TypeFilters
from fhirstore.filter_pushdown import rows_filter
from fhirstore.models import Resource
from fhirstore.writes import delete_resource, put_resource

pytestmark = pytest.mark.django_db

WRITTEN = [
    datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
    datetime(2024, 1, 1, 12, 0, 0, 124999, tzinfo=UTC),
    datetime(2024, 6, 30, 23, 59, 59, 999999, tzinfo=UTC),
]


@pytest.fixture
def rows() -> None:
    for n, written in enumerate(WRITTEN):
        put_resource(
            resource_type="Patient",
            resource_id=f"p{n}",
            body={
                "resourceType": "Patient",
                "id": f"p{n}",
                "active": n != 1,
                "name": [{"family": ["Zoë", "Smith", 'O\'Hara "Jr"'][n]}],
                "meta": {"profile": [f"http://example.org/profile/{n}|1.0"]},
                "managingOrganization": {"reference": f"Organization/org{n}"},
                "identifier": [{"system": "urn:mrn", "value": str(1000 + n)}],
            },
            now=written,
        )
        put_resource(
            resource_type="Condition",
            resource_id=f"c{n}",
            body={
                "resourceType": "Condition",
                "id": f"c{n}",
                "clinicalStatus": {"coding": [{"code": ["active", "resolved", "active"][n]}]},
                "subject": {"reference": f"Patient/p{n}"},
            },
            now=written,
        )
    delete_resource(resource_type="Patient", resource_id="p2", now=WRITTEN[2])


QUERIES = [
    "Patient?_id=p0,p1",
    "Patient?_id:not=p0",
    "Patient?_lastUpdated=2024-01-01T12:00:00.123Z",
    "Patient?_lastUpdated=gt2024-01-01T12:00:00.123Z",
    "Patient?_lastUpdated=ge2024-01-01T12:00:00.124Z",
    "Patient?_lastUpdated=lt2024-01-01T12:00:00.124Z",
    "Patient?_lastUpdated=le2024-01-01T12:00:00.123Z",
    "Patient?_lastUpdated=sa2024-01-01",
    "Patient?_lastUpdated=eb2024-06-30",
    "Patient?_lastUpdated=le9999",
    "Patient?active=true",
    "Patient?active=false",
    "Patient?identifier=1001",
    "Patient?identifier=urn:mrn|1000",
    "Patient?family:exact=Zoë",
    'Patient?family:exact=O\'Hara "Jr"',
    "Patient?organization=Organization/org1",
    "Patient?organization=org0",
    "Patient?_profile=http://example.org/profile/1",
    "Patient?_profile:below=http://example.org/profile/",
    "Condition?clinical-status=active",
    "Condition?clinical-status=active&subject=Patient/p2",
    "Condition?clinical-status=resolved,active",
]


@pytest.mark.parametrize("query", QUERIES)
def test_rows_the_database_keeps_include_every_match(rows, query):
    filters = TypeFilters.from_texts([query], now=datetime(2025, 1, 1, tzinfo=UTC))
    resource_type = filters.searches[0].resource_type
    pushed = rows_filter(filters, [resource_type])
    assert pushed is not None, "every query here has a criterion the database can check"
    kept = set(
        Resource.objects.filter(pushed, resource_type=resource_type, deleted=False).values_list(
            "resource_id", flat=True
        )
    )
    live = Resource.objects.filter(resource_type=resource_type, deleted=False)
    matches = {row.resource_id for row in live if filters.searches[0].matches(json.loads(row.body))}
    assert matches <= kept


def test_the_database_does_leave_rows_out(rows):
    filters = TypeFilters.from_texts(
        ["Condition?clinical-status=resolved", "Patient?_lastUpdated=gt2024-02-01"],
        now=datetime(2025, 1, 1, tzinfo=UTC),
    )
    kept = Resource.objects.filter(rows_filter(filters, ["Patient", "Condition"]))
    assert sorted(kept.values_list("resource_id", flat=True)) == ["c1", "p2"]  # p2: deleted


def test_types_without_a_filter_and_deletions_always_pass(rows):
    filters = TypeFilters.from_texts(["Condition?_id=c0"], now=datetime(2025, 1, 1, tzinfo=UTC))
    kept = Resource.objects.filter(rows_filter(filters, ["Patient", "Condition"]))
    assert sorted(kept.values_list("resource_id", flat=True)) == ["c0", "p0", "p1", "p2"]


def test_nothing_is_pushed_when_one_filter_of_a_type_has_no_checkable_criterion(rows):
    filters = TypeFilters.from_texts(
        ["Condition?_id=c0", "Condition?onset-date=2024"], now=datetime(2025, 1, 1, tzinfo=UTC)
    )
    assert rows_filter(filters, ["Condition"]) is None


def test_a_filter_too_large_for_one_statement_is_left_to_the_engine(rows):
    codes = ",".join(f"code-{n}" for n in range(250))
    filters = TypeFilters.from_texts(
        [f"Condition?clinical-status={codes}"], now=datetime(2025, 1, 1, tzinfo=UTC)
    )
    assert rows_filter(filters, ["Condition"]) is None
