"""Plain member paths walk the JSON instead of running fhirpathpy: on every resource of
the shared Synthea data (and a few written for choice elements), for every parameter of
its type, both must give the same values."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from fhirpathpy import compile as compile_fhirpath
from fhirpathpy.models import models

from bulkops.fhir.search.definitions import search_parameters
from bulkops.fhir.search.extractors import _AS_FUNCTION, _AS_OPERATOR
from bulkops.fhir.search.paths import compile_path
from tests.shared_data import SYNTHEA_BUNDLES, SYNTHEA_NDJSON, needs_synthea

WRITTEN = [
    {
        "resourceType": "Observation",
        "component": [
            {"code": {"text": "a"}, "valueQuantity": {"value": 1}},
            {"code": {"text": "b"}, "valueString": "x"},
        ],
        "valueCodeableConcept": {"coding": [{"code": "c"}]},
        "effectivePeriod": {"start": "2024"},
    },
    {"resourceType": "Condition", "onsetAge": {"value": 3}, "abatementString": "later"},
    {
        "resourceType": "Patient",
        "name": [{"given": ["A", "B"]}, {"given": ["C"]}],
        "deceasedBoolean": False,
        "_birthDate": {"extension": [{"url": "x"}]},
    },
]


def resources() -> list[dict]:
    found = list(WRITTEN)
    for path in sorted(SYNTHEA_NDJSON.glob("*.ndjson")):
        found += [json.loads(line) for line in path.read_text().splitlines()[:60]]
    for path in sorted(SYNTHEA_BUNDLES.glob("*_*.json")):
        found += [entry["resource"] for entry in json.loads(path.read_text())["entry"]]
    return found


def decimals(value: Any) -> Any:
    """JSON numbers as the Decimals fhirpathpy makes of them."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, list):
        return [decimals(item) for item in value]
    if isinstance(value, dict):
        return {key: decimals(item) for key, item in value.items()}
    return value


@needs_synthea
def test_walks_give_what_fhirpathpy_gives():
    checked = 0
    compiled: dict[str, tuple] = {}
    for resource in resources():
        for parameter in search_parameters(resource["resourceType"]).values():
            for path in parameter.paths:
                expression = _AS_FUNCTION.sub(
                    r".ofType(\g<type>)", _AS_OPERATOR.sub(r".ofType(\g<type>)", path)
                )
                if expression not in compiled:
                    walk = compile_path(expression)
                    compiled[expression] = (
                        walk,
                        compile_fhirpath(expression, models["r4"]) if walk else None,
                    )
                walk, reference = compiled[expression]
                if walk is None:
                    continue
                assert decimals(walk(resource)) == decimals(reference(resource)), (
                    expression,
                    resource.get("id"),
                )
                checked += 1
    assert checked > 5000


@pytest.mark.parametrize(
    "expression",
    [
        "Patient.telecom.where(system='email')",
        "Patient.deceased.exists() and Patient.deceased != false",
        "Observation.component.value.code",  # a choice in the middle
        "Observation.nosuchelement",
        "Bundle.entry[0].resource",
    ],
)
def test_anything_but_a_plain_known_path_is_left_to_fhirpathpy(expression):
    assert compile_path(expression) is None
