"""`_typeFilter` and `_until` at kick-off (spec §1.3, §1.4): splitting, OR within a type,
refusals under strict and lenient handling, what the job stores."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bulkops.fhir.outcome import FhirError
from bulkops.fhir.params import PATIENT, SYSTEM, parse_export_parameters
from bulkops.fhir.type_filters import TypeFilters, split_type_filters

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
LENIENT_TAIL = " It was ignored (Prefer: handling=lenient)."


def parse(pairs, *, handling="strict", level=SYSTEM):
    return parse_export_parameters(
        pairs,
        level=level,
        handling=handling,
        now=NOW,
        method="GET",
        base_url="https://bulkops.example/fhir",
    )


def refused(pairs) -> str:
    with pytest.raises(FhirError) as caught:
        parse(pairs)
    assert caught.value.status == 400
    assert caught.value.code == "not-supported"
    return caught.value.diagnostics


def test_filters_split_only_before_the_next_type():
    assert split_type_filters(
        ["Observation?code=a,b,MedicationRequest?status=active", "Condition?clinical-status=active"]
    ) == [
        "Observation?code=a,b",
        "MedicationRequest?status=active",
        "Condition?clinical-status=active",
    ]


def test_repeated_and_comma_joined_filters_mean_the_same():
    joined = parse([("_typeFilter", "Observation?status=final,Condition?code=1")])
    repeated = parse(
        [("_typeFilter", "Observation?status=final"), ("_typeFilter", "Condition?code=1")]
    )
    assert joined.type_filters == repeated.type_filters
    assert [s.text for s in joined.type_filters] == [
        "Observation?status=final",
        "Condition?code=1",
    ]


def test_the_job_stores_each_filter_as_bulkops_reads_it():
    parsed = parse([("_typeFilter", "Observation?subject=https://bulkops.example/fhir/Patient/p1")])
    assert parsed.as_json()["_typeFilter"] == ["Observation?subject=Patient/p1"]
    assert parse([]).as_json()["_typeFilter"] == []


def test_filters_on_one_type_are_ored_and_criteria_in_one_are_anded():
    filters = TypeFilters.from_texts(
        [
            "MedicationRequest?status=active",
            "MedicationRequest?status=completed&date=gt2018-07-01T00:00:00Z",
        ],
        now=NOW,
    )
    keep = filters.matcher("MedicationRequest")

    def request(status, when):
        return {
            "resourceType": "MedicationRequest",
            "status": status,
            "dosageInstruction": [{"timing": {"event": [when]}}],
        }

    assert keep(request("active", "2001-01-01"))  # the first filter
    assert keep(request("completed", "2019-01-01"))  # the second
    assert not keep(request("completed", "2017-01-01"))  # completed, but too old
    assert not keep(request("stopped", "2019-01-01"))
    assert filters.matcher("Observation") is None  # no filter: exported whole


@pytest.mark.parametrize(
    ("value", "part"),
    [
        ("Observation?_sort=date", "_sort is a result parameter"),
        ("Observation?_include=Observation:patient", "_include is a result parameter"),
        ("Observation?subject.name=x", "subject.name is a chained parameter"),
        ("Observation?code-value-quantity=1$2", "code-value-quantity is a composite parameter"),
        ("Observation?colour=red", "Observation has no search parameter 'colour'"),
        ("Observation?code:in=http://vs", "the modifier :in is not supported"),
        ("Banana?x=1", "'Banana' is not a FHIR R4 resource type"),
    ],
)
def test_strict_refuses_naming_the_filter_and_the_part(value, part):
    diagnostics = refused([("_typeFilter", value)])
    assert diagnostics.startswith(f"The _typeFilter {value!r} cannot be applied: {part}")
    assert diagnostics.endswith("Send 'Prefer: handling=lenient' to run the export without it.")


def test_lenient_drops_only_the_refused_filter_with_the_same_sentence_as_a_warning():
    parsed = parse(
        [
            ("_typeFilter", "Observation?_sort=date"),
            ("_typeFilter", "Observation?status=final"),
            ("_typeFilter", "Condition?_text=fever"),
        ],
        handling="lenient",
    )
    assert [s.text for s in parsed.type_filters] == ["Observation?status=final"]
    assert parsed.warnings == (
        "The _typeFilter 'Observation?_sort=date' cannot be applied: _sort is a result "
        "parameter: it shapes results, selects nothing." + LENIENT_TAIL,
        "The _typeFilter 'Condition?_text=fever' cannot be applied: bulkops cannot "
        "evaluate _text." + LENIENT_TAIL,
    )


def test_a_filter_on_a_type_outside_type_is_refused():
    diagnostics = refused([("_type", "Patient"), ("_typeFilter", "Observation?status=final")])
    assert "_type does not ask for Observation" in diagnostics
    lenient = parse(
        [("_type", "Patient"), ("_typeFilter", "Observation?status=final")], handling="lenient"
    )
    assert lenient.type_filters == ()
    assert "_type does not ask for Observation" in lenient.warnings[0]


def test_the_same_filter_twice_is_kept_once():
    parsed = parse([("_typeFilter", "Observation?status=final,Observation?status=final")])
    assert len(parsed.type_filters) == 1


def test_too_many_filters_are_refused_whatever_the_handling():
    many = ",".join(f"Observation?code={n}" for n in range(101))
    with pytest.raises(FhirError) as caught:
        parse([("_typeFilter", many)], handling="lenient")
    assert "At most 100" in caught.value.diagnostics


def test_until_is_an_instant_after_since_and_may_lie_in_the_future():
    parsed = parse([("_since", "2024-01-01T00:00:00Z"), ("_until", "2030-01-01T00:00:00Z")])
    assert parsed.until == datetime(2030, 1, 1, tzinfo=UTC)
    assert parsed.as_json()["_until"] == "2030-01-01T00:00:00+00:00"
    with pytest.raises(FhirError, match="_until must be later than _since"):
        parse([("_since", "2024-01-01T00:00:00Z"), ("_until", "2024-01-01T00:00:00Z")])
    with pytest.raises(FhirError, match="_until must be a FHIR instant"):
        parse([("_until", "2024-01-01")])
    with pytest.raises(FhirError, match="_until may be given only once"):
        parse([("_until", "2024-01-01T00:00:00Z"), ("_until", "2024-02-01T00:00:00Z")])


def test_filters_work_at_patient_level_too():
    parsed = parse([("_typeFilter", "Condition?clinical-status=active")], level=PATIENT)
    assert parsed.type_filters[0].resource_type == "Condition"
