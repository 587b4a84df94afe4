"""A large load counts its own rows before it commits (PostgreSQL): its deferred
foreign-key checks are planned from the table's statistics, and an analyze that ran
while the table was filling would have left them saying the table is empty."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.utils import timezone

from fhirstore.bulk_rows import STATISTICS_AFTER_ROWS
from fhirstore.models import Resource
from fhirstore.writes import ResourceWrite, write_resources

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner"),
    pytest.mark.django_db(transaction=True),
]


def known_rows() -> float:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [Resource._meta.db_table]
        )
        return cursor.fetchone()[0]


def patients(count: int) -> list[ResourceWrite]:
    return [
        ResourceWrite("Patient", f"p{n}", {"resourceType": "Patient", "id": f"p{n}"})
        for n in range(count)
    ]


def test_a_large_load_is_counted_in_the_statistics_before_it_commits():
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Resource._meta.db_table}")  # the empty table, counted
    assert known_rows() == 0
    inserted = STATISTICS_AFTER_ROWS + 500
    with transaction.atomic():
        write_resources(patients(inserted), now=timezone.now())
        assert known_rows() >= inserted


def test_a_small_load_leaves_the_statistics_alone():
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Resource._meta.db_table}")
    with transaction.atomic():
        write_resources(patients(50), now=timezone.now())
        assert known_rows() == 0
