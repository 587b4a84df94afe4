"""load_fhir and the console upload on the defects real Synthea data showed: decimals
re-written through float, conditional references left in NDJSON, export folders that
failed to load and reloads whose types vanished from the summary."""

from __future__ import annotations

import gc
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from fhirstore.loaders import load_file
from fhirstore.models import CompartmentMembership, Resource
from tests.shared_data import SYNTHEA_BUNDLES, SYNTHEA_NDJSON, needs_synthea

pytestmark = pytest.mark.django_db

NPI = "http://hl7.org/fhir/sid/us-npi"


def stored(resource_type: str, resource_id: str) -> str:
    return Resource.objects.get(resource_type=resource_type, resource_id=resource_id).body


def write_ndjson(path: Path, *resources: dict[str, Any] | str) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in resources]
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def practitioner(pid: str, npi: str) -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "id": pid,
        "identifier": [{"system": NPI, "value": npi}],
    }


def encounter(eid: str, npi: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "participant": [{"individual": {"reference": f"Practitioner?identifier={NPI}|{npi}"}}],
    }


def summary_row(output: str, resource_type: str) -> list[int]:
    match = re.search(rf"^{resource_type}((?:\s+\d+){{5}})$", output, re.M)
    assert match, output
    return [int(n) for n in match.group(1).split()]


# Decimals


def test_decimals_keep_their_text_through_load_and_fhir_read(load_fhir, tmp_path, client_a):
    line = (
        '{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},'
        '"valueQuantity":{"value":11208.90},"component":[{"code":{"text":"y"},'
        '"valueQuantity":{"value":1.000000000000000000001}},{"code":{"text":"z"},'
        '"valueQuantity":{"value":1e2}}]}'
    )
    run = load_fhir(write_ndjson(tmp_path / "Observation.ndjson", line))
    assert not run.failed, run.stderr
    body = stored("Observation", "o1")
    for number in ("11208.90", "1.000000000000000000001", "1e2"):
        assert f'"value":{number}}}' in body
    read = client_a.request("get", "/fhir/Observation/o1").content.decode()
    assert '"valueQuantity":{"value":11208.90}' in read
    # A search that matches on the value and re-writes the body for _elements keeps it too.
    found = client_a.request(
        "get", "/fhir/Observation?value-quantity=11208.90&_elements=valueQuantity"
    ).content.decode()
    assert '"valueQuantity":{"value":11208.90}' in found


def test_a_reload_that_only_adds_precision_is_a_new_version(load_fhir, tmp_path):
    source = tmp_path / "Observation.ndjson"
    load_fhir(
        write_ndjson(source, '{"resourceType":"Observation","id":"o1","valueInteger":1,"x":[2.5]}')
    )
    again = load_fhir(source)
    assert summary_row(again.stdout, "Observation") == [0, 0, 1, 0, 0]
    run = load_fhir(
        write_ndjson(source, '{"resourceType":"Observation","id":"o1","valueInteger":1,"x":[2.50]}')
    )
    assert summary_row(run.stdout, "Observation") == [0, 1, 0, 0, 0]
    assert '"x":[2.50]' in stored("Observation", "o1")


def test_nan_is_refused_as_not_a_json_number(load_fhir, tmp_path):
    run = load_fhir(
        write_ndjson(tmp_path / "o.ndjson", '{"resourceType":"Observation","id":"o","v":NaN}')
    )
    assert run.failed and "o.ndjson: line 1: invalid JSON: NaN is not a JSON number" in run.stderr
    assert not Resource.objects.exists()


def test_a_meta_that_is_not_an_object_refuses_its_file_by_line(load_fhir, tmp_path):
    lines = [
        {"resourceType": "Patient", "id": "ok"},
        {"resourceType": "Patient", "id": "m", "meta": "x"},
    ]
    run = load_fhir(write_ndjson(tmp_path / "p.ndjson", *lines))
    assert run.failed and "p.ndjson: line 2: meta of Patient/m is not an object" in run.stderr
    assert not Resource.objects.exists()


@needs_synthea
def test_real_bundle_decimals_keep_their_trailing_zeros(load_fhir):
    dwain = next(SYNTHEA_BUNDLES.glob("Dwain_*.json"))
    run = load_fhir(*SYNTHEA_BUNDLES.glob("*Information*.json"), dwain)
    assert not run.failed, run.stderr
    assert dwain.read_text().count("361.00") == 4
    bodies = "".join(Resource.objects.values_list("body", flat=True))
    assert bodies.count(":361.00") == 4 and ":361.0," not in bodies


# Conditional references


def test_ndjson_conditional_references_resolve_against_files_loaded_after(load_fhir, tmp_path):
    """Encounter.ndjson sorts before Practitioner.ndjson: it waits for it."""
    write_ndjson(tmp_path / "Encounter.ndjson", encounter("e1", "1"), encounter("e2", "1"))
    write_ndjson(tmp_path / "Practitioner.ndjson", practitioner("dr1", "1"))
    run = load_fhir(tmp_path)
    assert not run.failed, run.stderr
    assert summary_row(run.stdout, "Encounter") == [2, 0, 0, 0, 0]
    assert '"individual":{"reference":"Practitioner/dr1"}' in stored("Encounter", "e2")
    assert Resource.objects.get(resource_id="e1").version_id == 1


def test_a_bundle_waits_for_an_ndjson_file_it_points_into(load_fhir, tmp_path):
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": encounter("e1", "7"), "request": {"method": "PUT", "url": "Encounter/e1"}}
        ],
    }
    (tmp_path / "A_bundle.json").write_text(json.dumps(bundle))
    write_ndjson(tmp_path / "Practitioner.ndjson", practitioner("dr7", "7"))
    run = load_fhir(tmp_path)
    assert not run.failed, run.stderr
    assert "Practitioner/dr7" in stored("Encounter", "e1")


@pytest.mark.parametrize(
    ("practitioners", "found"),
    [([], "no resource"), ([practitioner("a", "1"), practitioner("b", "1")], "2 resources")],
)
def test_unresolved_conditional_references_refuse_the_file_per_line(
    load_fhir, tmp_path, practitioners, found
):
    write_ndjson(tmp_path / "Encounter.ndjson", encounter("e1", "2"), encounter("e2", "1"))
    if practitioners:
        write_ndjson(tmp_path / "Practitioner.ndjson", *practitioners, practitioner("c", "2"))
    run = load_fhir(tmp_path)
    assert run.failed
    if practitioners:
        message = f"Encounter.ndjson: line 2: Practitioner?identifier={NPI}|1 matches {found}"
    else:
        message = (
            f"Encounter.ndjson: line 1: Practitioner?identifier={NPI}|2 matches no resource; "
            f"line 2: Practitioner?identifier={NPI}|1 matches no resource (file not loaded)"
        )
    assert message in run.stderr
    assert not Resource.objects.filter(resource_type="Encounter").exists()


@needs_synthea
def test_real_ndjson_references_resolve_and_an_older_sets_npi_twin_is_ambiguous(load_fhir):
    source = "".join(path.read_text() for path in SYNTHEA_NDJSON.glob("*.ndjson"))
    conditional = len(re.findall(r'"reference":"[A-Za-z]+\?identifier=', source))
    run = load_fhir(SYNTHEA_NDJSON)
    assert not run.failed, run.stderr
    bodies = "".join(Resource.objects.values_list("body", flat=True))
    assert conditional == 2792 and "?identifier=" not in bodies
    # The Bundles' older Synthea generation has another Practitioner with NPI 9999998799:
    # loaded together, references to it match two resources.
    Resource.objects.all().delete()
    run = load_fhir(SYNTHEA_BUNDLES, SYNTHEA_NDJSON)
    assert run.failed
    twin = f"Practitioner?identifier={NPI}|9999998799"
    assert f"Encounter.000.ndjson: line 45: {twin} matches 2 resources" in run.stderr


# Export folders and the summary


def test_a_bulk_export_folder_loads_with_its_manifest_log_and_error_files_skipped(
    load_fhir, tmp_path
):
    patient = {"resourceType": "Patient", "id": "gone"}
    load_fhir(write_ndjson(tmp_path / "seed.ndjson", patient))
    folder = tmp_path / "export"
    (folder / "error").mkdir(parents=True)
    write_ndjson(folder / "1.Patient.ndjson", {"resourceType": "Patient", "id": "p1"})
    write_ndjson(
        folder / "log.ndjson",
        {
            "exportId": "x",
            "timestamp": "2025-01-01T00:00:00Z",
            "eventId": "kickoff",
            "eventDetail": {},
        },
    )
    (folder / "manifest.json").write_text(
        json.dumps(
            {
                "transactionTime": "2025-01-01T00:00:00Z",
                "request": "x",
                "requiresAccessToken": True,
                "output": [],
                "error": [],
            }
        )
    )
    write_ndjson(
        folder / "error" / "OperationOutcome.ndjson",
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "processing"}],
        },
    )
    write_ndjson(
        folder / "deleted-0000-Patient.ndjson",
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"request": {"method": "DELETE", "url": "Patient/gone"}}],
        },
    )
    (folder / "README.txt").write_text("downloaded with bulkops")
    run = load_fhir(folder)
    assert not run.failed, run.stderr
    for name, why in [
        ("README.txt", "not a FHIR data file"),
        ("log.ndjson", "a Bulk Data export log, not FHIR data"),
        ("manifest.json", "a Bulk Data manifest, not FHIR data"),
        ("OperationOutcome.ndjson", "OperationOutcomes (an export's error file), not data to keep"),
    ]:
        assert f"{name}: skipped, {why}" in run.stdout
    assert summary_row(run.stdout, "Patient") == [1, 0, 0, 1, 0]
    assert set(Resource.objects.live().values_list("resource_id", flat=True)) == {"p1"}


def test_a_reload_counts_if_none_exist_matches_as_skipped(load_fhir, tmp_path):
    entry = {
        "fullUrl": "urn:uuid:7c2b4a4e-1d53-4b6a-8f0a-35c1a1f2d001",
        "resource": practitioner("7c2b4a4e-1d53-4b6a-8f0a-35c1a1f2d001", "5"),
        "request": {"method": "POST", "url": "Practitioner", "ifNoneExist": f"identifier={NPI}|5"},
    }
    bundle = tmp_path / "practitionerInformation1.json"
    bundle.write_text(json.dumps({"resourceType": "Bundle", "type": "batch", "entry": [entry]}))
    assert summary_row(load_fhir(bundle).stdout, "Practitioner") == [1, 0, 0, 0, 0]
    assert summary_row(load_fhir(bundle).stdout, "Practitioner") == [0, 0, 0, 0, 1]


def test_console_upload_resolves_across_files_and_names_skipped_ones(console_client, tmp_path):
    files = [
        SimpleUploadedFile("Encounter.ndjson", json.dumps(encounter("e1", "3")).encode()),
        SimpleUploadedFile("Practitioner.ndjson", json.dumps(practitioner("dr3", "3")).encode()),
        SimpleUploadedFile("log.ndjson", b'{"eventId":"kickoff","eventDetail":{}}\n'),
    ]
    browser: Client = console_client("operator")
    response = browser.post("/data/upload/", {"files": files})
    report = response.content.decode().split('id="upload-report"')[1].split("</section>")[0]
    assert "skipped</span> a Bulk Data export log, not FHIR data" in report
    assert report.count("1 created, 0 updated, 0 unchanged, 0 deleted, 0 skipped") == 2
    assert "Practitioner/dr3" in stored("Encounter", "e1")


# Bulk writes: first versions, updates and tombstones mixed in a file of several batches


def condition(cid: str, patient_id: str, note: str = "") -> dict[str, Any]:
    body = {
        "resourceType": "Condition",
        "id": cid,
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    return body | ({"note": [{"text": note}]} if note else {})


def test_a_reload_of_several_batches_creates_updates_revives_and_reindexes(load_fhir, tmp_path):
    """2,501 lines (three write batches): new, changed, unchanged and deleted resources,
    and a key written again in a later batch; each resource indexed once."""
    source = tmp_path / "Condition.ndjson"
    load_fhir(write_ndjson(source, *(condition(f"c{n}", "p1") for n in range(2000))))
    Resource.objects.filter(resource_id="c5").update(deleted=True, body="", version_id=2)
    lines = [condition(f"c{n}", "p2" if n < 100 else "p1") for n in range(2500)]
    lines.append(condition("c1999", "p1", note="again, in the third batch"))

    run = load_fhir(write_ndjson(source, *lines))

    # c0-c99 (c5 a tombstone written over) move to p2, c100-c1999 are as stored, 500 are
    # new; the last line updates c1999 again.
    assert summary_row(run.stdout, "Condition") == [500, 100 + 1, 1900, 0, 0]
    c5 = Resource.objects.get(resource_id="c5")
    assert (c5.deleted, c5.version_id) == (False, 3)
    assert json.loads(stored("Condition", "c1999"))["note"] == [
        {"text": "again, in the third batch"}
    ]
    compartments = CompartmentMembership.objects.filter(resource__resource_type="Condition")
    assert compartments.count() == 2500
    assert set(
        compartments.filter(patient_id="p2").values_list("resource__resource_id", flat=True)
    ) == {f"c{n}" for n in range(100)}


def test_stored_keys_after_whole_batches_of_new_ones_are_updated_not_duplicated(
    load_fhir, tmp_path
):
    """New resources are written in one pass until a batch meets a stored key; that
    batch and the rest then tell new from stored. The first batch here is all new, the
    second half new and half stored, the third stored; every resource is stored once,
    in the file's order, with its compartment row."""
    source = tmp_path / "Condition.ndjson"
    load_fhir(write_ndjson(source, *(condition(f"c{n}", "p1") for n in range(1500, 2500))))
    lines = [condition(f"c{n}", "p2" if 1500 <= n < 1600 else "p1") for n in range(2500)]

    run = load_fhir(write_ndjson(source, *lines))

    assert summary_row(run.stdout, "Condition") == [1500, 100, 900, 0, 0]
    in_store_order = Resource.objects.filter(resource_type="Condition").order_by("pk")
    ids = [int(rid[1:]) for rid in in_store_order.values_list("resource_id", flat=True)]
    assert ids == [*range(1500, 2500), *range(1500)]
    compartments = CompartmentMembership.objects.filter(resource__resource_type="Condition")
    assert compartments.count() == 2500
    # No database constraint holds the index to the resources: the writes do.
    assert CompartmentMembership.objects.count() == 2500
    moved = compartments.filter(patient_id="p2").values_list("resource__resource_id", flat=True)
    assert set(moved) == {f"c{n}" for n in range(1500, 1600)}


def test_the_garbage_collector_runs_again_after_a_load_good_or_bad(tmp_path):
    """A load pauses Python's cyclic collector; the process (a worker, the web server)
    must not be left without it, whether the file loaded or was refused."""
    good = write_ndjson(tmp_path / "good.ndjson", condition("c1", "p1"))
    bad = write_ndjson(tmp_path / "bad.ndjson", condition("c2", "p1"), "{not json")
    for path in (good, bad):
        load_file(path, now=timezone.now())
        assert gc.isenabled()
    assert Resource.objects.filter(resource_id="c1").exists()
    assert not Resource.objects.filter(resource_id="c2").exists()
