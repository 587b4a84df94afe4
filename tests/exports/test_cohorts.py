"""Bulk Cohort Groups (v4 digest §5, §7.D): members from FHIR search filters evaluated
by the search engine, AND-ed, `members-refreshed`, and exported like any Group."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from bulkops.fhir.cohort import COHORT_PROFILE, MEMBER_FILTER, MEMBERS_REFRESHED, CohortError
from fhirstore.cohorts import refresh_cohort, save_cohort
from fhirstore.models import GroupMembership
from fhirstore.writes import put_resource
from tests.exports.conftest import observation

pytestmark = pytest.mark.django_db


def members(group_id: str) -> list[str]:
    rows = GroupMembership.objects.filter(group__resource_id=group_id, inactive=False)
    return sorted(rows.values_list("patient_id", flat=True))


def test_filters_on_patients_and_their_compartments_are_anded(store):
    put_resource(
        resource_type="Observation",
        resource_id="p3-a1c",
        body=observation("p3-a1c", "p3", code="4548-4"),
        now=timezone.now(),
    )
    put_resource(
        resource_type="Patient",
        resource_id="p4",
        body={"resourceType": "Patient", "id": "p4", "gender": "male"},
        now=timezone.now(),
    )
    now = timezone.now()
    group = save_cohort(
        group_id="diabetes",
        name="Women with an HbA1c",
        filters=["Patient?gender=female", "Observation?code=http://loinc.org|4548-4"],
        actor="op",
        now=now,
    )
    assert members("diabetes") == ["p3"]
    body = json.loads(group.body)
    assert body["meta"]["profile"] == [COHORT_PROFILE]
    assert [e["valueExpression"]["expression"] for e in body["modifierExtension"]] == [
        "Patient?gender=female",
        "Observation?code=http://loinc.org|4548-4",
    ]
    assert {e["url"] for e in body["modifierExtension"]} == {MEMBER_FILTER}
    (refreshed,) = body["extension"]
    assert refreshed["url"] == MEMBERS_REFRESHED
    assert refreshed["valueDateTime"] <= body["date"]  # SHALL NOT be later than Group.date
    assert (body["type"], body["actual"], body["quantity"]) == ("person", True, 1)
    assert "characteristic" not in body
    event = AuditEvent.objects.get(action="group.cohort_saved")
    assert event.details["members"] == 1


def test_a_filter_the_engine_cannot_apply_is_refused_and_changes_nothing(store):
    for filters, reason in (
        (["Patient?gender=female&_sort=name"], "_sort"),
        (["Patient?nosuchparam=1"], "nosuchparam"),
        (["Practitioner?name=x"], "not in the Patient compartment"),
        ([], "at least one member filter"),
    ):
        with pytest.raises(CohortError, match=reason):
            save_cohort(group_id="bad", name="Bad", filters=filters, actor="op", now=timezone.now())
    assert not GroupMembership.objects.filter(group__resource_id="bad").exists()


def test_no_match_makes_an_empty_cohort_and_refresh_recomputes(store):
    now = timezone.now()
    group = save_cohort(
        group_id="men", name="Men", filters=["Patient?gender=male"], actor="op", now=now
    )
    assert json.loads(group.body)["actual"] is False and "member" not in json.loads(group.body)
    put_resource(
        resource_type="Patient",
        resource_id="p9",
        body={"resourceType": "Patient", "id": "p9", "gender": "male"},
        now=now,
    )
    later = now + timedelta(minutes=1)
    refreshed = json.loads(refresh_cohort(group_id="men", actor="op", now=later).body)
    assert members("men") == ["p9"]
    assert refreshed["extension"][0]["valueDateTime"] > json.loads(group.body)["date"]
    with pytest.raises(CohortError, match="not a cohort Group"):
        refresh_cohort(group_id="g1", actor="op", now=later)
