from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkops import untrusted_json
from bulkops.fhir import resource_json
from bulkops.fhir.search import parse_type_search

NOW = datetime(2025, 1, 1, tzinfo=UTC)
EXACT = [
    "11208.90",
    "1.000000000000000000001",
    "1e2",
    "1E-7",
    "0.0000001",
    "-3.10",
    "1e999999999999999999999",
    "123456789012345678901234567890",
]


@pytest.mark.parametrize("number", EXACT)
def test_numbers_come_back_as_written(number: str) -> None:
    text = f'{{"resourceType":"Observation","valueQuantity":{{"value":{number}}}}}'
    assert resource_json.dumps(resource_json.loads(text)) == text
    assert resource_json.dumps(untrusted_json.loads_resource(text.encode())) == text


def test_precision_decides_equality_and_floats_are_written_as_json_does() -> None:
    assert resource_json.loads("1.0") != resource_json.loads("1.00")
    assert resource_json.loads("[1.50]") == resource_json.loads(" [ 1.50 ] ")
    generated = {"b": 98.6, "a": [1, True, None, "é"]}
    assert resource_json.dumps(generated, sort_keys=True) == json.dumps(
        generated, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def test_indented_output_matches_json_layout_with_exact_numbers() -> None:
    value = resource_json.loads('{"a":{"b":[1.50,{}],"c":[]},"d":"x"}')
    assert resource_json.dumps(value, indent=2) == json.dumps(
        {"a": {"b": ["X", {}], "c": []}, "d": "x"}, indent=2
    ).replace('"X"', "1.50")


@pytest.mark.parametrize("text", ["[NaN]", "[Infinity]", '{"v":-Infinity}'])
def test_nan_and_infinity_are_not_json_numbers(text: str) -> None:
    with pytest.raises(json.JSONDecodeError, match="is not a JSON number"):
        untrusted_json.loads_resource(text)


def test_filters_compare_the_exact_value() -> None:
    """As a float 1.000000000000000000001 was 1.0 and did not match gt1."""
    search = parse_type_search("Observation?value-quantity=gt1", now=NOW)
    resource = resource_json.loads(
        '{"resourceType":"Observation","valueQuantity":{"value":1.000000000000000000001}}'
    )
    assert search.matches(resource)


def test_a_value_too_large_for_decimal_arithmetic_matches_no_number_filter() -> None:
    resource = resource_json.loads(
        '{"resourceType":"Observation","valueQuantity":{"value":1e999999999999999999999}}'
    )
    for text in ("value-quantity=gt5", "value-quantity=lt5", "value-quantity=ne5"):
        assert not parse_type_search(f"Observation?{text}", now=NOW).matches(resource)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("\ue000\"\\")),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=3) | st.just("\ue000"), children, max_size=4),
    max_leaves=20,
)  # fmt: skip


@given(JSON_VALUES)
def test_any_json_text_comes_back_as_written(value: object) -> None:
    """Minified JSON parsed and written again is the same text, whatever the strings hold
    (the private-use character U+E000 included) and wherever the numbers are."""
    for ascii_only in (False, True):
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=ascii_only)
        parsed = resource_json.loads(text)
        assert resource_json.dumps(parsed, ensure_ascii=ascii_only) == text


def test_a_string_that_is_u_e000_is_written_as_a_string_beside_exact_numbers() -> None:
    text = '{"\ue000":["\ue000",1.50,"x\ue000"],"value":1e2}'
    assert resource_json.dumps(resource_json.loads(text)) == text
