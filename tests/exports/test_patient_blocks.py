"""`organizeOutputBy=Patient` on $export-v4 (v4 digest §1.7, §7.A.5): a real worker
writes patient blocks, and a streaming reader checks every block boundary."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bulkops.fhir.patient_blocks import PATIENT_BLOCKS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

ORGANIZE = {"name": "organizeOutputBy", "valueString": "Patient"}


def stream_lines(client, url: str) -> Iterator[dict[str, Any]]:
    """A file's lines as they arrive, one parsed resource at a time."""
    response = client.request("get", url)
    assert response.status_code == 200
    pending = b""
    for chunk in response.streaming_content:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from (json.loads(line) for line in lines)
    assert pending == b"", "every line ends in a newline"


def header_patient(line: dict[str, Any]) -> str | None:
    if line["resourceType"] != "Parameters":
        return None
    (parameter,) = line["parameter"]
    assert parameter["name"] == "header"
    return parameter["valueReference"]["reference"].removeprefix("Patient/")


def belongs_to(resource: dict[str, Any], patient_id: str) -> bool:
    if resource["resourceType"] == "Patient":
        return resource["id"] == patient_id
    return resource.get("subject", {}).get("reference") == f"Patient/{patient_id}"


def read_blocks(client, manifest: dict[str, Any]) -> dict[str, list[str]]:
    """Patient id -> the resources of its block, reading each file as a stream: every
    file starts with a header, every resource belongs to the block it is in, a block
    continues in another file only where `continuesInFile` says, under the same header."""
    assert manifest["outputOrganizedBy"] == "Patient"
    assert manifest["outputOrganizedByDetail"] == PATIENT_BLOCKS
    by_url = {item["url"]: item for item in manifest["output"]}
    continuations = {
        item["continuesInFile"] for item in manifest["output"] if "continuesInFile" in item
    }
    blocks: dict[str, list[str]] = {}
    for item in manifest["output"]:
        assert "type" not in item
        current, lines = None, 0
        for line in stream_lines(client, item["url"]):
            lines += 1
            if (patient := header_patient(line)) is not None:
                continued = lines == 1 and item["url"] in continuations
                assert continued or patient not in blocks, f"block of {patient} seen twice"
                current = patient
                blocks.setdefault(patient, [])
                continue
            assert current is not None, "a file starts with a header line"
            assert belongs_to(line, current), (line, current)
            blocks[current].append(f"{line['resourceType']}/{line['id']}")
        assert lines == item["count"]
        if "continuesInFile" in item:
            following = by_url[item["continuesInFile"]]
            first = next(stream_lines(client, following["url"]))
            assert header_patient(first) == current, "a continuation repeats the header"
    return blocks


def expected(*patients: str) -> dict[str, list[str]]:
    return {
        p: [f"Patient/{p}", f"Condition/{p}-c", f"Observation/{p}-o0", f"Observation/{p}-o1"]
        for p in patients
    }


def test_an_organised_export_is_read_block_by_block(client_a, store, settings):
    settings.BULKOPS_PARTITION_SIZE = 2  # two workers' partitions: p1, p2 | p3
    settings.BULKOPS_MAX_RESOURCES_PER_FILE = 7  # one 5-line block per file
    kickoff = client_a.post_kick_off("/fhir/$export-v4", [ORGANIZE])
    manifest = client_a.finished_manifest(kickoff)
    assert len(manifest["output"]) == 3
    assert read_blocks(client_a, manifest) == expected("p1", "p2", "p3")


def test_a_block_longer_than_a_file_continues_under_its_header(client_a, store, settings):
    settings.BULKOPS_MAX_RESOURCES_PER_FILE = 3  # header + 2 resources a file
    kickoff = client_a.post_kick_off("/fhir/Group/g1/$export-v4", [ORGANIZE])
    manifest = client_a.finished_manifest(kickoff)
    assert len(manifest["output"]) == 4
    assert sum("continuesInFile" in item for item in manifest["output"]) == 2
    assert read_blocks(client_a, manifest) == expected("p1", "p2")


def test_organised_blocks_follow_type_and_type_filter(client_a, store):
    kickoff = client_a.post_kick_off(
        "/fhir/Patient/$export-v4",
        [
            ORGANIZE,
            {"name": "_type", "valueString": "Observation"},
            {"name": "_typeFilter", "valueString": "Observation?_id=p2-o1"},
            {"name": "patient", "valueReference": {"reference": "Patient/p2"}},
        ],
    )
    manifest = client_a.finished_manifest(kickoff)
    assert read_blocks(client_a, manifest) == {"p2": ["Observation/p2-o1"]}


def test_organising_by_another_type_is_refused(client_a, store):
    response = client_a.post_kick_off(
        "/fhir/$export-v4", [{"name": "organizeOutputBy", "valueString": "Encounter"}]
    )
    assert response.status_code == 400
    assert "cannot organise output by 'Encounter'" in response.json()["issue"][0]["diagnostics"]
