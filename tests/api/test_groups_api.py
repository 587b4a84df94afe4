"""Groups and the data inventory through the operator API."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_operator_creates_updates_and_deletes_a_group(api_as, store):
    operator = api_as("operator")
    created = operator.post(
        "/api/v1/groups/create", {"id": "g2", "name": "Pilot", "patient_ids": ["p1", "p3"]}
    )
    assert created.status_code == 201, created.content
    assert created.json()["members"] == ["p1", "p3"]
    updated = operator.post("/api/v1/groups/g2/update", {"name": "Pilot", "patient_ids": ["p2"]})
    assert updated.json()["members"] == ["p2"]
    assert updated.json()["member_count"] == 1
    listed = operator.get("/api/v1/groups/").json()["results"]
    assert [(g["id"], g["name"], g["member_count"]) for g in listed] == [
        ("g1", "Cohort 1", 2),
        ("g2", "Pilot", 1),
    ]
    assert operator.post("/api/v1/groups/g2/delete").status_code == 204
    assert operator.get("/api/v1/groups/g2").status_code == 404
    actions = AuditEvent.objects.filter(
        actor="operator-api", action__startswith="group."
    ).values_list("action", flat=True)
    assert list(actions) == ["group.deleted", "group.upserted", "group.upserted"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "patient_ids": ["nobody"]}, "non_field_errors"),
        ({"name": "", "patient_ids": []}, "name"),
        ({"name": "x"}, "patient_ids"),
        ({"id": "g1", "name": "x", "patient_ids": []}, "id"),
        ({"id": "bad id!", "name": "x", "patient_ids": []}, "non_field_errors"),
    ],
)
def test_bad_group_input_gets_400(api_as, store, body, field):
    response = api_as("operator").post("/api/v1/groups/create", body)
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]


def test_inventory_counts_live_and_deleted_resources_per_type(api_as, store):
    operator = api_as("operator")
    operator.post("/api/v1/groups/g1/delete")
    rows = operator.get("/api/v1/inventory/").json()
    assert {r["resource_type"]: (r["live"], r["deleted"]) for r in rows} == {
        "Condition": (3, 0),
        "Group": (0, 1),
        "Observation": (6, 0),
        "Patient": (3, 0),
        "Practitioner": (1, 0),
    }
