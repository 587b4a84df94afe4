"""Parsing searches: the definitions each type gets, the canonical text a parsed search
gives back, and every refusal naming the part bulkops cannot evaluate."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkops.fhir.resource_types import R4_RESOURCE_TYPES
from bulkops.fhir.search import UnsupportedSearch, parse_type_search
from bulkops.fhir.search.definitions import (
    SUPPORTED_TYPES,
    search_parameter,
    search_parameters,
    split_alternatives,
)
from bulkops.fhir.search.extractors import extractor

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def parse(text: str, base_url: str = "https://bulkops.example/fhir"):
    return parse_type_search(text, now=NOW, base_url=base_url)


def refusal(text: str) -> str:
    with pytest.raises(UnsupportedSearch) as caught:
        parse(text)
    return str(caught.value)


def test_each_type_keeps_only_its_own_alternatives_of_a_shared_expression():
    code = search_parameter("MedicationRequest", "code")
    assert code is not None and code.type == "token"
    assert code.paths == ("MedicationRequest.medication as CodeableConcept",)
    assert search_parameter("Observation", "code").paths == ("Observation.code",)
    patient = search_parameter("Observation", "patient")
    assert patient.paths == ("Observation.subject.where(resolve() is Patient)",)


def test_common_parameters_start_at_the_concrete_type():
    assert search_parameter("Encounter", "_lastUpdated").paths == ("Encounter.meta.lastUpdated",)
    assert search_parameter("Patient", "_id").type == "token"
    assert search_parameter("Patient", "_profile").type == "uri"
    assert {"_id", "_lastUpdated", "_tag", "_security", "_source", "_profile"} <= set(
        search_parameters("Condition")
    )


def test_unions_split_only_at_the_top_level():
    assert split_alternatives("(A.x as B) | A.y.where(z = '|') | A.w") == [
        "(A.x as B)",
        "A.y.where(z = '|')",
        "A.w",
    ]


def test_a_parsed_search_gives_back_a_text_that_parses_to_the_same_search():
    search = parse(
        "Observation?code=http://loinc.org|8867-4,1234-5&date=ge2024-01-01T00:00:00+01:00"
        "&subject=https://bulkops.example/fhir/Patient/p1"
    )
    assert search.text == (
        "Observation?code=http://loinc.org|8867-4,1234-5&date=ge2024-01-01T00:00:00+01:00"
        "&subject=Patient/p1"
    )
    assert parse(search.text) == search


def test_percent_and_ampersand_in_a_value_survive_the_round_trip():
    search = parse("Organization?name=50%25%26more")
    assert search.text == "Organization?name=50%25%26more"
    assert search.matches({"resourceType": "Organization", "name": "50%&more Ltd"})


def test_a_time_zone_plus_decoded_to_a_space_is_put_back():
    assert parse("Observation?date=ge2024-01-01T00:00:00 01:00") == parse(
        "Observation?date=ge2024-01-01T00:00:00+01:00"
    )


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Observation", "not a search like Type?parameter=value"),
        ("Banana?code=1", "'Banana' is not a FHIR R4 resource type"),
        ("Observation?", "names no search parameter"),
        ("Observation?code", "'code' has no value"),
        ("Observation?code=", "code has no value"),
        ("Observation?_include=Observation:subject", "_include is a result parameter"),
        ("Observation?_revinclude=Provenance:target", "_revinclude is a result parameter"),
        ("Observation?_sort=date", "_sort is a result parameter"),
        ("Observation?_count=10", "_count is a result parameter"),
        ("Observation?_elements=id", "_elements is a result parameter"),
        ("Observation?_summary=true", "_summary is a result parameter"),
        ("Observation?subject.name=smith", "subject.name is a chained parameter"),
        ("Observation?subject:Patient.name=smith", "subject:Patient.name is a chained parameter"),
        ("Patient?_has:Observation:patient:code=1234", "reverse chain (_has)"),
        ("Observation?code-value-quantity=1234$5", "code-value-quantity is a composite parameter"),
        ("Location?near=42|-71", "near is a special parameter"),
        ("Observation?_text=fever", "bulkops cannot evaluate _text"),
        ("Observation?colour=red", "Observation has no search parameter 'colour' in FHIR R4"),
        ("Observation?_filter=code eq 1", "Observation has no search parameter '_filter'"),
        ("Observation?code:in=http://x/vs", "the modifier :in is not supported on code"),
        ("Observation?code:below=123", "(bulkops supports :missing, :not, :text)"),
        ("Patient?name:phonetic=smith", "the modifier :phonetic is not supported on name"),
        ("Observation?date:exact=2024", "the modifier :exact is not supported on date"),
        ("Observation?subject:identifier=x|1", "the modifier :identifier is not supported"),
        (
            "Observation?subject:Practitioner=1",
            "subject refers to Device, Group, Location, Patient",
        ),
        ("Observation?code:missing=maybe", "code:missing must be true or false, not 'maybe'"),
        ("Observation?date=2024-13-01", "date value '2024-13-01' is not a date"),
        ("Observation?date=gx2024", "date value 'gx2024' is not a date"),
        ("Observation?date=yesterday", "is not a date"),
        ("Observation?value-quantity=heavy", "value-quantity value 'heavy' is not a quantity"),
        ("Observation?value-quantity=5|kg", "is not a quantity"),
        ("RiskAssessment?probability=high", "probability value 'high' is not a number"),
        ("Observation?code=a|b|c", "code value 'a|b|c' is not code, system|code"),
        ("Observation?subject=Practitioner/1", "never to Practitioner"),
        ("Observation?subject=Banana/1", "Banana is not a FHIR R4 resource type"),
        ("Observation?subject=not an id!", "not a reference like Type/id, an id or a URL"),
        ("Observation?subject:Patient=Group/1", "'Group/1' is not a Patient"),
        ("Observation?code=a\x00b", "it contains a NUL character"),
        ("Observation?value-quantity=1e99999999999", "is not a quantity"),
        ("Observation?" + "&".join(["status=final"] * 51), "it has 51 criteria; at most 50"),
        ("Observation?code=" + ",".join(["1"] * 1001), "code has 1001 values; at most 1000"),
        ("RiskAssessment?probability=-1e-99999999", "is not a number"),
        ("Observation?code=a%00b", "it contains a NUL character"),
    ],
)
def test_what_cannot_be_evaluated_is_refused_naming_the_part(text, names):
    assert names in refusal(text)


def test_a_result_parameter_among_good_criteria_still_refuses_the_search():
    assert "_sort" in refusal("Observation?code=1234-5&_sort=date")


def test_every_r4_parameter_of_a_supported_type_compiles():
    """What the CapabilityStatement lists as usable must parse: every expression of every
    token, string, date, reference, quantity, number and uri parameter compiles."""
    compiled = 0
    for resource_type in R4_RESOURCE_TYPES:
        for parameter in search_parameters(resource_type).values():
            if parameter.type in SUPPORTED_TYPES and parameter.paths:
                extractor(parameter)
                compiled += 1
    assert compiled > 2000


PARAMETERS = st.sampled_from(
    ["code", "date", "value-quantity", "subject", "patient", "_lastUpdated", "_id", "_tag",
     "_profile", "status", "combo-code", "component-value-quantity", "focus", "category"]
)  # fmt: skip
MODIFIERS = st.sampled_from(["", ":missing", ":not", ":text", ":exact", ":below", ":Patient"])
VALUES = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"(eq|ne|gt|lt|ge|le|sa|eb|ap)?-?[0-9]{1,6}(\.[0-9]{0,12})?(e-?[0-9]{1,12})?"),
    st.from_regex(r"(ge|ap|le)?[0-9]{4}(-[0-9]{2}(-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2})?"
                  r"(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?"),
    st.from_regex(r"[a-z:/.]{0,12}\|[a-z0-9]{0,6}(\|[a-z]{0,4})?"),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    criteria=st.lists(st.tuples(PARAMETERS, MODIFIERS, VALUES), min_size=1, max_size=4),
)
def test_any_query_parses_and_matches_or_is_refused_in_words(criteria):
    """Nothing a client writes makes parsing or matching raise anything but a refusal."""
    query = "&".join(f"{name}{modifier}={value}" for name, modifier, value in criteria)
    try:
        search = parse("Observation?" + query)
    except UnsupportedSearch as refused:
        assert str(refused)
        return
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "1"}], "text": "x"},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-01-01T00:00:00Z",
        "valueQuantity": {"value": 1.5, "unit": "kg"},
        "meta": {"lastUpdated": "2024-01-01T00:00:00.000Z", "tag": [{"code": "t"}]},
    }
    assert search.matches(resource) in (True, False)
    assert parse(search.text) == search
