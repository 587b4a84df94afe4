"""The shared Synthea data, loaded and exported back by a real system export: every
loaded resource comes out exactly once, equal to its source but for `meta` and the
references loading rewrote, and every number written as the source wrote it."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from bulkops.fhir.references import parse_conditional
from fhirstore.models import Resource
from tests.shared_data import SYNTHEA_BUNDLES, SYNTHEA_NDJSON, needs_synthea

pytestmark = [
    needs_synthea,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("celery_worker"),
]


class Number:
    """A JSON number as json's tokenizer saw it: its raw text."""

    def __init__(self, text: str) -> None:
        self.text = text


def with_number_text(text: str) -> Any:
    return json.loads(text, parse_float=Number, parse_int=Number)


def numbers(resource: Any) -> list[str]:
    """The raw text of every number of a resource parsed by `with_number_text`, in
    document order, meta left out (the server rewrites it)."""
    if isinstance(resource, Number):
        return [resource.text]
    if isinstance(resource, dict):
        return [n for key, value in resource.items() if key != "meta" for n in numbers(value)]
    if isinstance(resource, list):
        return [n for item in resource for n in numbers(item)]
    return []


def without_meta(resource: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if key != "meta"}


def sources() -> dict[tuple[str, str], tuple[dict[str, Any], list[str]]]:
    """Each resource's source and the raw text of its numbers; for a resource several
    files write, the last loaded (patient Bundles re-POST some hospitalInformation
    Organizations with other utilisation counts)."""
    found: dict[tuple[str, str], tuple[dict[str, Any], list[str]]] = {}
    texts = [
        line for p in sorted(SYNTHEA_NDJSON.glob("*.ndjson")) for line in p.read_text().splitlines()
    ]
    bundles = sorted(SYNTHEA_BUNDLES.glob("*.json"), key=lambda p: "Information" not in p.name)
    for path in bundles:
        plain, raw = json.loads(path.read_text()), with_number_text(path.read_text())
        for entry, raw_entry in zip(plain["entry"], raw["entry"], strict=True):
            texts.append((entry["resource"], numbers(raw_entry["resource"])))
    for item in texts:
        resource, raw_numbers = (
            item if isinstance(item, tuple) else (json.loads(item), numbers(with_number_text(item)))
        )
        found[(resource["resourceType"], resource["id"])] = (resource, raw_numbers)
    return found


def resolved(source: dict[str, Any], output: dict[str, Any]) -> int:
    """Check that `output` is `source` with its urn:uuid and conditional references
    rewritten to the Type/id they name; return how many were rewritten."""
    rewritten = 0

    def walk(a: Any, b: Any) -> None:
        nonlocal rewritten
        if isinstance(a, dict) and isinstance(b, dict):
            assert a.keys() == b.keys()
            for key in a:
                if key == "reference" and a[key] != b[key]:
                    rewritten += 1
                    assert_rewritten(a[key], b[key])
                else:
                    walk(a[key], b[key])
        elif isinstance(a, list) and isinstance(b, list):
            assert len(a) == len(b)
            for x, y in zip(a, b, strict=True):
                walk(x, y)
        else:
            assert a == b

    walk(without_meta(source), without_meta(output))
    return rewritten


def assert_rewritten(source: str, output: str) -> None:
    if source.startswith("urn:uuid:"):
        assert output.endswith("/" + source.removeprefix("urn:uuid:"))
        return
    conditional = parse_conditional(source)
    assert conditional is not None, source
    resource_type, resource_id = output.split("/")
    assert resource_type == conditional.resource_type
    target = json.loads(
        Resource.objects.get(resource_type=resource_type, resource_id=resource_id).body
    )
    assert {"system": conditional.system, "value": conditional.value} in [
        {"system": i.get("system"), "value": i.get("value")} for i in target["identifier"]
    ]


def test_synthea_data_round_trips_through_a_system_export(load_fhir, client_a):
    started = time.monotonic()
    # The NDJSON first: the Bundles' older generation shares an NPI with it (see
    # test_loading), so loaded in one run its references would be ambiguous.
    for folder in (SYNTHEA_NDJSON, SYNTHEA_BUNDLES):
        run = load_fhir(folder)
        assert not run.failed, run.stderr
    loaded = time.monotonic()
    manifest = client_a.finished_manifest(client_a.kick_off("/fhir/$export"))
    lines: list[str] = []
    for item in manifest["output"]:
        response = client_a.request("get", item["url"])
        lines += b"".join(response.streaming_content).decode().splitlines()
    exported = time.monotonic()

    source = sources()
    output: dict[tuple[str, str], str] = {}
    for line in lines:
        resource = json.loads(line)
        key = (resource["resourceType"], resource["id"])
        assert key not in output, f"{key} exported twice"
        output[key] = line
    assert (
        output.keys()
        == source.keys()
        == set(Resource.objects.values_list("resource_type", "resource_id"))
    )
    assert not [line for line in lines if "?identifier=" in line]
    references = decimals = 0
    for key, line in output.items():
        resource, source_numbers = source[key]
        references += resolved(resource, json.loads(line))
        assert numbers(with_number_text(line)) == source_numbers, key
        decimals += sum("." in n or "e" in n.lower() for n in source_numbers)
    print(
        f"round trip: {len(source)} loaded, {len(output)} exported and compared, "
        f"{references} references rewritten, {decimals} decimals compared; "
        f"load {loaded - started:.1f} s, export {exported - loaded:.1f} s"
    )
