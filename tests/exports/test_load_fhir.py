from __future__ import annotations

import json
import re

import pytest

from fhirstore.loaders import SHARED_FIRST
from fhirstore.models import CompartmentMembership, Resource
from tests.exports.conftest import DATA
from tests.shared_data import SHARED_DATA, SYNTHEA_BUNDLES, SYNTHEA_NDJSON

pytestmark = pytest.mark.django_db

SYNTHEA = DATA / "synthea"
NPI_PRACTITIONER = "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999999999"


def body(resource_type: str, resource_id: str) -> dict:
    return json.loads(
        Resource.objects.get(resource_type=resource_type, resource_id=resource_id).body
    )


def count_row(output: str, resource_type: str) -> list[int]:
    match = re.search(rf"^{resource_type}((?:\s+\d+){{5}})$", output, re.M)
    assert match, output
    return [int(n) for n in match.group(1).split()]


def alice_bundle() -> dict:
    return json.loads(next(SYNTHEA.glob("Alice_*.json")).read_text())


def test_synthea_bundles_load_with_per_type_counts_and_rewritten_references(load_fhir):
    run = load_fhir(SYNTHEA)
    assert not run.failed, run.stderr
    assert count_row(run.stdout, "Patient") == [2, 0, 0, 0, 0]
    assert count_row(run.stdout, "Observation") == [4, 0, 0, 0, 0]
    assert count_row(run.stdout, "Practitioner") == [1, 0, 0, 0, 0]
    alice = alice_bundle()
    patient_id = alice["entry"][0]["resource"]["id"]
    encounter = body("Encounter", alice["entry"][1]["resource"]["id"])
    practitioner = Resource.objects.get(resource_type="Practitioner")
    organization = Resource.objects.get(resource_type="Organization")
    assert encounter["subject"] == {"reference": f"Patient/{patient_id}"}
    assert (
        encounter["participant"][0]["individual"]["reference"]
        == f"Practitioner/{practitioner.resource_id}"
    )
    assert encounter["serviceProvider"]["reference"] == f"Organization/{organization.resource_id}"
    assert encounter["meta"] == {"versionId": "1", "lastUpdated": encounter["meta"]["lastUpdated"]}
    stored = "".join(Resource.objects.values_list("body", flat=True))
    assert '"reference":"urn:uuid:' not in stored and "?identifier=" not in stored


def test_compartment_index_follows_the_definition_for_loaded_data(load_fhir):
    load_fhir(SYNTHEA)
    alice = alice_bundle()
    patient_id = alice["entry"][0]["resource"]["id"]
    in_compartment = set(
        CompartmentMembership.objects.filter(patient_id=patient_id).values_list(
            "resource_type", flat=True
        )
    )
    assert {
        "Patient",
        "Encounter",
        "Observation",
        "Condition",
        "Claim",
        "ExplanationOfBenefit",
        "Provenance",
    } <= in_compartment
    assert not {"Practitioner", "Organization", "Location"} & in_compartment
    practitioner = Resource.objects.get(resource_type="Practitioner")
    assert not practitioner.compartments.exists()


def test_loading_twice_changes_nothing_and_changed_content_gets_a_new_version(load_fhir, tmp_path):
    load_fhir(SYNTHEA)
    before = dict(Resource.objects.values_list("pk", "body"))
    again = load_fhir(SYNTHEA)
    assert not again.failed and count_row(again.stdout, "total")[:2] == [0, 0]
    assert dict(Resource.objects.values_list("pk", "body")) == before

    alice = alice_bundle()
    alice["entry"][3]["resource"]["valueQuantity"]["value"] = 999
    changed = tmp_path / "Alice.json"
    changed.write_text(json.dumps(alice))
    load_fhir(changed)
    observation = Resource.objects.get(resource_id=alice["entry"][3]["resource"]["id"])
    assert observation.version_id == 2
    assert json.loads(observation.body)["valueQuantity"]["value"] == 999
    assert Resource.objects.filter(version_id=2).count() == 1


def test_a_bundle_with_one_broken_entry_changes_nothing_and_loading_continues(load_fhir):
    load_fhir(SYNTHEA)
    before = Resource.objects.count(), CompartmentMembership.objects.count()
    run = load_fhir(DATA / "bad" / "broken_reference_bundle.json", DATA / "ndjson")
    assert run.failed
    assert "broken_reference_bundle.json: entry[5]: reference urn:uuid:" in run.stderr
    assert "matches no entry's fullUrl" in run.stderr
    assert not Resource.objects.filter(body__contains="Carol").exists()
    assert Resource.objects.count() == before[0] + 5  # the NDJSON after it still loaded
    assert CompartmentMembership.objects.count() > before[1]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("invalid.json", "invalid.json: line 3: invalid JSON"),
        ("missing_resource_type.json", "missing_resource_type.json: missing resourceType"),
        ("unknown_type.ndjson", "unknown_type.ndjson: line 2: unknown resource type 'Patientt'"),
    ],
)
def test_bad_files_are_reported_with_location_and_leave_no_trace(load_fhir, name, message):
    run = load_fhir(DATA / "bad" / name)
    assert run.failed and message in run.stderr
    assert not Resource.objects.exists()


def test_a_conditional_reference_to_nothing_fails_the_patient_bundle(load_fhir):
    run = load_fhir(next(SYNTHEA.glob("Alice_*.json")))  # without the practitioner file
    assert run.failed and f"entry[1]: {NPI_PRACTITIONER} matches no resource" in run.stderr
    assert not Resource.objects.exists()


def test_ndjson_and_gzipped_ndjson_load_with_compartments(load_fhir):
    run = load_fhir(DATA / "ndjson")
    assert not run.failed, run.stderr
    assert count_row(run.stdout, "Patient") == [2, 0, 0, 0, 0]
    assert count_row(run.stdout, "Observation") == [3, 0, 0, 0, 0]
    assert set(
        CompartmentMembership.objects.filter(patient_id="nd-pat-1").values_list(
            "resource_type", flat=True
        )
    ) == {"Patient", "Observation"}


def test_missing_path_is_an_error(load_fhir, tmp_path):
    run = load_fhir(tmp_path / "nope")
    assert run.failed and "no such file or folder" in run.stderr


def test_shared_synthea_data_loads_completely(load_fhir):
    files = [
        p for p in SHARED_DATA.rglob("*") if p.name.endswith((".json", ".ndjson", ".ndjson.gz"))
    ]
    if not files:
        pytest.skip(f"no Synthea data in {SHARED_DATA} yet (see its README)")
    # The NDJSON first, on its own: the Bundles' older Synthea generation holds another
    # Practitioner with one of its NPIs, so loaded together its references would match two
    # (tests/fhirstore/test_loading.py).
    for folder in (SYNTHEA_NDJSON, SYNTHEA_BUNDLES):
        run = load_fhir(folder)
        assert not run.failed, run.stderr
    bundles = [p for p in files if p.suffix == ".json" and not p.name.startswith(SHARED_FIRST)]
    assert Resource.objects.filter(resource_type="Patient").count() >= len(bundles)
    stored = Resource.objects.values_list("body", flat=True)
    assert not any('"reference":"urn:uuid:' in b or "?identifier=" in b for b in stored)
