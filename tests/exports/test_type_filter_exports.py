"""Filtered exports end to end: real tokens, a real Celery worker, files read back over
HTTP. Expected contents are worked out by hand from the data each test writes (or, for
the Synthea Group export, from the shared files read with plain JSON code)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from bulkops.fhir.manifest import format_instant
from exports.models import ExportJob
from fhirstore.groups import upsert_group
from fhirstore.models import Resource
from fhirstore.writes import delete_resource, put_resource
from tests.shared_data import SYNTHEA_NDJSON, needs_synthea

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

LAB = "http://terminology.hl7.org/CodeSystem/observation-category"


def observation(oid: str, patient: str, category: str, value: float, **extra: Any) -> dict:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [{"coding": [{"system": LAB, "code": category}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": "2024-03-01T08:00:00Z",
        "valueQuantity": {"value": value, "unit": "mg/dL"},
        **extra,
    }


@pytest.fixture
def lab_store() -> dict[str, Any]:
    """Two patients; p1 has lab o1 (95) and o2 (140), vital sign o3 and survey o4 (whose
    note says "laboratory", so only the engine can tell it apart); p2 has lab o5 (60).
    Conditions c1 (p1, active) and c2 (p2, resolved). Group g = {p1, p2}."""
    written = timezone.now() - timedelta(hours=1)
    for pid in ("p1", "p2"):
        put_resource(
            resource_type="Patient",
            resource_id=pid,
            body={"resourceType": "Patient", "id": pid, "gender": "female"},
            now=written,
        )
    for body in (
        observation("o1", "p1", "laboratory", 95),
        observation("o2", "p1", "laboratory", 140),
        observation("o3", "p1", "vital-signs", 72),
        observation("o4", "p1", "survey", 3, note=[{"text": "laboratory"}]),
        observation("o5", "p2", "laboratory", 60),
    ):
        put_resource(resource_type="Observation", resource_id=body["id"], body=body, now=written)
    for cid, pid, status in (("c1", "p1", "active"), ("c2", "p2", "resolved")):
        put_resource(
            resource_type="Condition",
            resource_id=cid,
            body={
                "resourceType": "Condition",
                "id": cid,
                "clinicalStatus": {"coding": [{"code": status}]},
                "subject": {"reference": f"Patient/{pid}"},
            },
            now=written,
        )
    upsert_group(group_id="g", name="Lab cohort", patient_ids=["p1", "p2"], actor="test")
    return {"written": written}


def ids(resources: dict[str, list]) -> dict[str, set[str]]:
    return {rtype: {r["id"] for r in items} for rtype, items in resources.items()}


def test_system_export_filters_only_the_named_type_and_ors_its_filters(client_a, lab_store):
    kickoff = client_a.kick_off(
        "/fhir/$export?_typeFilter=Observation%3Fcategory%3Dlaboratory%26value-quantity%3Dgt100"
        "&_typeFilter=Observation%3Fcategory%3Dvital-signs"
    )
    assert kickoff.status_code == 202, kickoff.content
    manifest = client_a.finished_manifest(kickoff)
    assert manifest["error"] == []
    assert manifest["extension"] == {
        "_typeFilter": [
            "Observation?category=laboratory&value-quantity=gt100",
            "Observation?category=vital-signs",
        ]
    }
    resources = client_a.resources(manifest)
    assert ids(resources) == {
        "Patient": {"p1", "p2"},
        "Observation": {"o2", "o3"},  # lab above 100, or a vital sign
        "Condition": {"c1", "c2"},
        "Group": {"g"},
    }
    # Kept resources are the stored bytes, not a re-serialisation.
    stored = Resource.objects.get(resource_type="Observation", resource_id="o2").body
    exported = next(r for r in resources["Observation"] if r["id"] == "o2")
    assert json.dumps(exported, separators=(",", ":"), ensure_ascii=False) == stored


def test_the_engine_decides_what_the_database_let_through(client_a, lab_store):
    """o4's note holds the text "laboratory", so the database's text check keeps it;
    the engine drops it. A code searched with a system matches a primitive `status`
    that has none in the resource: the database must not rule it out."""
    manifest = client_a.finished_manifest(
        client_a.kick_off(
            data={
                "_type": "Observation",
                "_typeFilter": [
                    "Observation?category=laboratory",
                    "Observation?status=http://hl7.org/fhir/observation-status|final&_id=o3",
                ],
            }
        )
    )
    assert ids(client_a.resources(manifest)) == {"Observation": {"o1", "o2", "o3", "o5"}}


def test_patient_level_post_with_patient_elements_and_filters(client_a, lab_store):
    kickoff = client_a.post_kick_off(
        "/fhir/Patient/$export",
        [
            {"name": "patient", "valueReference": {"reference": "Patient/p1"}},
            {"name": "_type", "valueString": "Observation,Condition"},
            {"name": "_typeFilter", "valueString": "Observation?category=laboratory"},
            {"name": "_typeFilter", "valueString": "Condition?clinical-status=resolved"},
            {"name": "_elements", "valueString": "Observation.valueQuantity"},
        ],
    )
    assert kickoff.status_code == 202, kickoff.content
    resources = client_a.resources(client_a.finished_manifest(kickoff))
    assert ids(resources) == {"Observation": {"o1", "o2"}}  # p1's one Condition is active
    for item in resources["Observation"]:
        assert "category" not in item and item["valueQuantity"]["unit"] == "mg/dL"
        assert item["meta"]["tag"][-1]["code"] == "SUBSETTED"


def test_since_and_until_bound_the_window_and_deletions_of_a_filtered_type_are_listed(
    client_a, lab_store
):
    since = timezone.now() - timedelta(minutes=30)
    put_resource(
        resource_type="Observation",
        resource_id="o6",
        body=observation("o6", "p2", "laboratory", 80),
        now=since + timedelta(minutes=5),
    )
    put_resource(
        resource_type="Observation",
        resource_id="o7",
        body=observation("o7", "p2", "vital-signs", 80),
        now=since + timedelta(minutes=5),
    )
    delete_resource(resource_type="Observation", resource_id="o3", now=since + timedelta(minutes=6))
    until = since + timedelta(minutes=10)
    put_resource(
        resource_type="Observation",
        resource_id="o8",
        body=observation("o8", "p2", "laboratory", 80),
        now=until + timedelta(minutes=1),
    )
    kickoff = client_a.kick_off(
        "/fhir/Group/g/$export",
        data={
            "_since": format_instant(since),
            "_until": format_instant(until),
            "_typeFilter": "Observation?category=laboratory",
        },
    )
    manifest = client_a.finished_manifest(kickoff)
    assert manifest["extension"]["_until"] == format_instant(until)
    # o6 is a lab result in the window; o7 is not a lab result; o8 came after _until;
    # the rest were written before _since.
    assert ids(client_a.resources(manifest)) == {"Observation": {"o6"}}
    deleted = client_a.resources(manifest, kind="deleted")["Bundle"]
    assert [b["entry"][0]["request"]["url"] for b in deleted] == ["Observation/o3"]


def test_lenient_warning_for_a_dropped_filter_reaches_the_manifest(client_a, lab_store):
    kickoff = client_a.kick_off(
        data={"_type": "Condition", "_typeFilter": "Condition?_sort=onset-date"},
        prefer="respond-async, handling=lenient",
    )
    manifest = client_a.finished_manifest(kickoff)
    assert ids(client_a.resources(manifest)) == {"Condition": {"c1", "c2"}}  # unfiltered
    (outcome,) = client_a.resources(manifest, kind="error")["OperationOutcome"]
    assert outcome["issue"][0]["diagnostics"] == (
        "The _typeFilter 'Condition?_sort=onset-date' cannot be applied: _sort is a result "
        "parameter: it shapes results, selects nothing. It was ignored "
        "(Prefer: handling=lenient)."
    )
    assert outcome["issue"][0]["diagnostics"] == ExportJob.objects.get().warnings[0]


@needs_synthea
def test_group_export_of_synthea_patients_on_a_worker(client_a, load_fhir, settings):
    """Two Synthea patients (counts from the shared NDJSON, read with plain JSON code):
    8e1a0a7c has 6 active Conditions of 47, 1 active MedicationRequest of 2, 7
    Encounters ending after 2021-01-01 of 33 and 13 Immunizations; a4a401d1 has 9 of
    34, 0 of 8, 10 of 44 and 8. Small partitions make several tasks share the export."""
    settings.BULKOPS_PARTITION_SIZE = 40
    assert not load_fhir(SYNTHEA_NDJSON).failed
    members = ["8e1a0a7c-e308-444b-075a-3c2b1f60f881", "a4a401d1-a46a-eb4a-8a38-760d5d79d6ec"]
    upsert_group(group_id="two", name="Two", patient_ids=members, actor="test")
    kickoff = client_a.post_kick_off(
        "/fhir/Group/two/$export",
        [
            {"name": "_type", "valueString": "Patient,Condition,MedicationRequest"},
            {"name": "_type", "valueString": "Encounter,Immunization"},
            {
                "name": "_typeFilter",
                "valueString": "Condition?clinical-status=active,MedicationRequest?status=active",
            },
            {"name": "_typeFilter", "valueString": "Encounter?date=ge2021-01-01"},
        ],
    )
    assert kickoff.status_code == 202, kickoff.content
    manifest = client_a.finished_manifest(kickoff, timeout=120)
    resources = client_a.resources(manifest)
    assert {rtype: len(items) for rtype, items in resources.items()} == {
        "Patient": 2,
        "Condition": 15,
        "MedicationRequest": 1,
        "Encounter": 17,
        "Immunization": 21,
    }
    assert {c["clinicalStatus"]["coding"][0]["code"] for c in resources["Condition"]} == {"active"}
    job = ExportJob.objects.get()
    assert job.partitions_total > 1
    assert job.resources_exported == 56
