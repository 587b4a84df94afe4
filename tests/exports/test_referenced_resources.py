"""Patient and Group exports add the resources outside the Patient compartment that the
exported resources refer to (bulkops/fhir/referenced.py): once each, within the token's
scopes, `_type` and `_typeFilter`, whatever their own lastUpdated."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from bulkops.fhir.referenced import REFERENCED_TYPES
from exports.models import ExportJob
from fhirstore.groups import upsert_group
from fhirstore.models import Resource
from fhirstore.writes import delete_resource, put_resource
from tests.exports.conftest import observation
from tests.shared_data import SYNTHEA_BUNDLES, SYNTHEA_NDJSON, needs_synthea

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

RELATIVE = re.compile(r"^([A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/.*)?$")


def references(node: Any) -> list[str]:
    """Every `reference` string in a resource."""
    if isinstance(node, dict):
        return [
            found
            for key, value in node.items()
            for found in ([value] if key == "reference" and isinstance(value, str) else [])
            + references(value)
        ]
    if isinstance(node, list):
        return [found for item in node for found in references(item)]
    return []


def keys_by_type(resources: dict[str, list]) -> dict[str, list[str]]:
    return {t: sorted(r["id"] for r in items) for t, items in resources.items()}


def unresolved(resources: dict[str, list]) -> set[str]:
    """References to a referenced type that name no resource of the output."""
    exported = {f"{t}/{r['id']}" for t, items in resources.items() for r in items}
    missing = set()
    for items in resources.values():
        for resource in items:
            for reference in references(resource):
                match = RELATIVE.match(reference)
                if (
                    match
                    and match.group(1) in REFERENCED_TYPES
                    and match.expand(r"\1/\2") not in exported
                ):
                    missing.add(reference)
    return missing


def practitioner(pid: str, **fields: Any) -> None:
    put_resource(
        resource_type="Practitioner",
        resource_id=pid,
        body={"resourceType": "Practitioner", "id": pid, **fields},
        now=timezone.now() - timedelta(hours=1),
    )


def seen_by(oid: str, patient: str, performer: str, code: str = "8867-4", **when: Any) -> None:
    put_resource(
        resource_type="Observation",
        resource_id=oid,
        body={**observation(oid, patient, code), "performer": [{"reference": performer}]},
        now=when.get("now", timezone.now() - timedelta(hours=1)),
    )


@pytest.fixture
def synthea_group(load_fhir) -> list[str]:
    """The shared Synthea data (NDJSON, then the Bundles: loaded together, an older
    Practitioner of the Bundles makes an NPI ambiguous), and Group cohort = half its
    patients."""
    for folder in (SYNTHEA_NDJSON, SYNTHEA_BUNDLES):
        run = load_fhir(folder)
        assert not run.failed, run.stderr
    patients = sorted(
        Resource.objects.filter(resource_type="Patient").values_list("resource_id", flat=True)
    )
    members = patients[::2]
    upsert_group(group_id="cohort", name="Cohort", patient_ids=members, actor="test")
    return members


@needs_synthea
def test_group_export_of_synthea_data_is_referentially_closed(client_a, synthea_group):
    manifest = client_a.finished_manifest(client_a.kick_off("/fhir/Group/cohort/$export"))
    resources = client_a.resources(manifest)

    assert unresolved(resources) == set()
    # (Locations are referred to only by the NDJSON's conditional references, which the
    # store keeps as written: they name no stored resource.)
    assert {"Practitioner", "Organization", "Device"} <= set(resources)
    for resource_type, ids in keys_by_type(resources).items():
        assert len(ids) == len(set(ids)), f"{resource_type} exported twice"
    # Only what the members' data refers to: the store holds more.
    assert (
        len(resources["Organization"])
        < Resource.objects.filter(resource_type="Organization").count()
    )
    # The members' own Devices, and no one else's.
    devices = {d["patient"]["reference"] for d in resources["Device"] if "patient" in d}
    assert devices and devices <= {f"Patient/{p}" for p in synthea_group}
    stored_devices = Resource.objects.filter(resource_type="Device").values_list("body", flat=True)
    member_devices = {
        json.loads(b)["id"]
        for b in stored_devices
        if json.loads(b)["patient"]["reference"].removeprefix("Patient/") in synthea_group
    }
    assert member_devices <= {d["id"] for d in resources["Device"]}
    job = ExportJob.objects.get()
    assert job.referenced_types == sorted(REFERENCED_TYPES)


@needs_synthea
def test_scopes_and_type_limit_the_added_types(client_a, synthea_group):
    scope = "system/Patient.read system/Encounter.read system/Organization.read"
    manifest = client_a.finished_manifest(
        client_a.kick_off("/fhir/Group/cohort/$export", scope=scope)
    )
    assert {item["type"] for item in manifest["output"]} == {"Patient", "Encounter", "Organization"}

    manifest = client_a.finished_manifest(
        client_a.kick_off("/fhir/Group/cohort/$export", data={"_type": "Encounter,Practitioner"})
    )
    resources = client_a.resources(manifest)
    assert set(resources) == {"Encounter", "Practitioner"}
    referred = {
        ref
        for encounter in resources["Encounter"]
        for ref in references(encounter)
        if ref.startswith("Practitioner/")
    }
    assert {f"Practitioner/{p['id']}" for p in resources["Practitioner"]} == referred


def test_referenced_types_alone_are_refused(client_a, store):
    response = client_a.kick_off("/fhir/Group/g1/$export", data={"_type": "Practitioner"})
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Patient compartment refer to them" in outcome["issue"][0]["diagnostics"]


def test_each_referenced_resource_comes_once_and_outsiders_not_at_all(client_a, store, settings):
    settings.BULKOPS_PARTITION_SIZE = 1  # every Observation in a partition of its own
    practitioner("dr2")
    practitioner("dr3")
    seen_by("p1-o0", "p1", "Practitioner/dr2")
    seen_by("p2-o0", "p2", "Practitioner/dr2")
    seen_by("p3-o0", "p3", "Practitioner/dr3")  # p3 is no member of g1
    manifest = client_a.finished_manifest(client_a.kick_off("/fhir/Group/g1/$export"))
    resources = keys_by_type(client_a.resources(manifest))
    assert resources["Practitioner"] == ["dr2"]


def test_references_of_referenced_resources_are_followed(client_a, store):
    put_resource(
        resource_type="Organization",
        resource_id="org1",
        body={"resourceType": "Organization", "id": "org1"},
        now=timezone.now() - timedelta(hours=1),
    )
    put_resource(
        resource_type="PractitionerRole",
        resource_id="role1",
        body={
            "resourceType": "PractitionerRole",
            "id": "role1",
            "practitioner": {"reference": "Practitioner/dr1"},
            "organization": {"reference": "Organization/org1"},
        },
        now=timezone.now() - timedelta(hours=1),
    )
    seen_by("p1-o0", "p1", "PractitionerRole/role1")
    manifest = client_a.finished_manifest(client_a.kick_off("/fhir/Group/g1/$export"))
    resources = client_a.resources(manifest)
    assert unresolved(resources) == set()
    assert keys_by_type(resources)["Organization"] == ["org1"]


def test_since_export_adds_what_its_changes_refer_to_whatever_their_lastupdated(client_a, store):
    since = timezone.now() - timedelta(minutes=30)  # the store was written an hour ago
    practitioner("dr-old-referrer")  # referred to only by an unchanged Observation
    seen_by("p2-o1", "p2", "Practitioner/dr-old-referrer")
    practitioner("dr-gone")
    seen_by("p1-o0", "p1", "Practitioner/dr1", now=since + timedelta(minutes=5))
    seen_by("p1-o1", "p1", "Practitioner/dr-gone", now=since + timedelta(minutes=5))
    delete_resource(resource_type="Practitioner", resource_id="dr-gone", now=since)
    # Changed since, but referred to only by data the export leaves out:
    practitioner("dr-old-referrer", gender="female")
    Resource.objects.filter(resource_id="dr-old-referrer").update(
        last_updated=since + timedelta(minutes=5)
    )

    kickoff = client_a.kick_off(
        "/fhir/Group/g1/$export", data={"_since": since.isoformat().replace("+00:00", "Z")}
    )
    resources = keys_by_type(client_a.resources(client_a.finished_manifest(kickoff)))
    # dr1 was last updated an hour ago, before _since: it comes because p1-o0 refers to it.
    # dr-gone is deleted (a referenced tombstone is neither exported nor listed), and
    # dr-old-referrer changed but nothing exported refers to it.
    assert resources == {"Observation": ["p1-o0", "p1-o1"], "Practitioner": ["dr1"]}


def test_type_filter_follows_only_the_references_of_the_lines_it_keeps(client_a, store):
    practitioner("dr2")
    seen_by("p1-o0", "p1", "Practitioner/dr1", code="8867-4")
    seen_by("p2-o0", "p2", "Practitioner/dr2", code="8310-5")
    kickoff = client_a.kick_off(
        "/fhir/Group/g1/$export",
        data={
            "_type": "Observation,Practitioner",
            "_typeFilter": "Observation?code=http://loinc.org|8310-5",
        },
    )
    resources = keys_by_type(client_a.resources(client_a.finished_manifest(kickoff)))
    assert resources == {"Observation": ["p2-o0"], "Practitioner": ["dr2"]}


def test_a_rewritten_or_deleted_referrer_is_followed_as_it_is_now(client_a, store):
    for pid in ("dr2", "dr3", "dr4"):
        practitioner(pid)
    seen_by("p1-o0", "p1", "Practitioner/dr2")
    seen_by("p1-o0", "p1", "Practitioner/dr3")  # a new version, another performer
    seen_by("p2-o0", "p2", "Practitioner/dr4")
    delete_resource(resource_type="Observation", resource_id="p2-o0", now=timezone.now())
    manifest = client_a.finished_manifest(client_a.kick_off("/fhir/Group/g1/$export"))
    assert keys_by_type(client_a.resources(manifest))["Practitioner"] == ["dr3"]


def test_references_of_a_resource_stored_before_they_were_noted_are_followed(client_a, store):
    practitioner("dr2")
    seen_by("p1-o0", "p1", "Practitioner/dr2")
    # As a row stored before the store noted references (fhirstore 0006), or by the
    # previous release while an upgrade runs: its body is searched instead.
    Resource.objects.filter(resource_id="p1-o0").update(refers_to=None)
    manifest = client_a.finished_manifest(client_a.kick_off("/fhir/Group/g1/$export"))
    assert keys_by_type(client_a.resources(manifest))["Practitioner"] == ["dr2"]


def test_elements_follow_only_the_references_of_the_elements_written(client_a, store):
    practitioner("dr2")
    seen_by("p1-o0", "p1", "Practitioner/dr1")
    put_resource(
        resource_type="Encounter",
        resource_id="p2-e0",
        body={
            "resourceType": "Encounter",
            "id": "p2-e0",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": {"reference": "Patient/p2"},
            "participant": [{"individual": {"reference": "Practitioner/dr2"}}],
        },
        now=timezone.now() - timedelta(hours=1),
    )
    kickoff = client_a.kick_off(
        "/fhir/Group/g1/$export",
        data={"_type": "Observation,Encounter,Practitioner", "_elements": "Observation.status"},
    )
    resources = keys_by_type(client_a.resources(client_a.finished_manifest(kickoff)))
    # The Observation is written without its performer; the Encounter whole.
    assert resources["Practitioner"] == ["dr2"]


def test_a_members_device_comes_once_and_an_outsiders_not_at_all(client_a, store):
    for did, patient in (("d1", "p1"), ("d3", "p3")):
        put_resource(
            resource_type="Device",
            resource_id=did,
            body={
                "resourceType": "Device",
                "id": did,
                "patient": {"reference": f"Patient/{patient}"},
            },
            now=timezone.now() - timedelta(hours=1),
        )
    put_resource(
        resource_type="Procedure",
        resource_id="p1-proc",
        body={
            "resourceType": "Procedure",
            "id": "p1-proc",
            "subject": {"reference": "Patient/p1"},
            "focalDevice": [{"manipulated": {"reference": "Device/d1"}}],
        },
        now=timezone.now() - timedelta(hours=1),
    )
    manifest = client_a.finished_manifest(client_a.kick_off("/fhir/Group/g1/$export"))
    assert keys_by_type(client_a.resources(manifest))["Device"] == ["d1"]
