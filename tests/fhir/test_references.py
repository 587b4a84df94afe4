from __future__ import annotations

from bulkops.fhir.references import (
    ConditionalReference,
    ResourceKey,
    parse_conditional,
    parse_reference,
    rewrite_references,
)


def test_parse_reference_understands_relative_versioned_and_absolute_forms():
    assert parse_reference("Patient/1") == ResourceKey("Patient", "1")
    assert parse_reference("Patient/1/_history/2") == ResourceKey("Patient", "1")
    assert parse_reference("https://x.org/fhir/Patient/a-b.c") == ResourceKey("Patient", "a-b.c")


def test_parse_reference_rejects_what_is_not_a_stored_resource():
    for reference in (
        "urn:uuid:1",
        "#contained",
        "Patient?identifier=a|b",
        "Nope/1",
        "x/Patient/1",
    ):
        assert parse_reference(reference) is None, reference


def test_conditional_references_need_identifier_system_and_value():
    assert parse_conditional(
        "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999999999"
    ) == ConditionalReference("Practitioner", "http://hl7.org/fhir/sid/us-npi", "9999999999")
    assert parse_conditional("Practitioner?name=Grey") is None
    assert parse_conditional("Practitioner?identifier=9999999999") is None


def test_rewrite_references_reaches_nested_references_only():
    body = {"a": {"reference": "x"}, "b": [{"c": {"reference": "y"}}], "reference_note": "z"}
    rewrite_references(body, str.upper)
    assert body == {
        "a": {"reference": "X"},
        "b": [{"c": {"reference": "Y"}}],
        "reference_note": "z",
    }
