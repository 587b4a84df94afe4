"""SMART scope maths (spec §7.9), no database."""

from __future__ import annotations

import pytest

from bulkops.fhir.scopes import grant_scopes, parse_scope, read_scope, readable_types


@pytest.mark.parametrize(
    ("text", "permissions", "v1"),
    [
        ("system/*.read", "rs", True),
        ("system/Patient.write", "cud", True),
        ("system/Patient.*", "cruds", True),
        ("system/Patient.rs", "rs", False),
        ("system/*.cruds", "cruds", False),
        ("patient/Observation.r", "r", False),
    ],
)
def test_v1_and_v2_scopes_parse_to_permission_sets(text: str, permissions: str, v1: bool) -> None:
    scope = parse_scope(text)
    assert scope is not None
    assert scope.permissions == frozenset(permissions)
    assert scope.v1 is v1
    assert str(scope) == text


@pytest.mark.parametrize(
    "text",
    [
        "launch",
        "openid",
        "offline_access",
        "system/*.dus",  # out of order
        "system/*.rr",  # repeated
        "system/*.x",
        "system/NotAType.read",
        "system/Patient.read?gender=male",  # v1 has no granular form
        "system/Patient",
        "admin/*.read",
    ],
)
def test_non_resource_and_malformed_scopes_parse_to_none(text: str) -> None:
    assert parse_scope(text) is None


def test_granular_scope_keeps_its_query() -> None:
    scope = parse_scope("system/Observation.rs?category=laboratory")
    assert scope is not None
    assert scope.query == "category=laboratory"
    assert str(scope) == "system/Observation.rs?category=laboratory"


@pytest.mark.parametrize(
    ("requested", "allowed", "granted"),
    [
        ("system/*.read", "system/*.read", ["system/*.read"]),
        ("system/*.rs", "system/*.read", ["system/*.rs"]),
        ("system/*.read", "system/*.rs", ["system/*.read"]),
        ("system/*.*", "system/*.read", ["system/*.read"]),
        ("system/*.cruds", "system/*.rs", ["system/*.rs"]),
        ("system/*.read", "system/*.r", ["system/*.r"]),  # v1 cannot say "r" alone
        ("system/*.write", "system/*.read", []),
        ("system/Patient.read", "system/*.read", ["system/Patient.read"]),
        (
            "system/*.read",
            "system/Patient.read system/Observation.rs",
            ["system/Patient.read", "system/Observation.read"],
        ),
        ("system/*.read system/Patient.read", "system/*.read", ["system/*.read"]),
        ("launch openid offline_access patient/*.read user/*.read", "system/*.read", []),
        (
            "system/Observation.rs?category=lab",
            "system/Observation.rs",
            ["system/Observation.rs?category=lab"],
        ),
        (
            "system/Observation.rs",
            "system/Observation.rs?category=lab",
            ["system/Observation.rs?category=lab"],
        ),
        ("system/Observation.rs?category=vital", "system/Observation.rs?category=lab", []),
        ("system/Patient.read", "system/Observation.read", []),
        ("", "system/*.read", []),
    ],
)
def test_grant_is_the_intersection_in_the_requested_syntax(
    requested: str, allowed: str, granted: list[str]
) -> None:
    assert grant_scopes(requested, allowed) == granted


def test_read_access_from_wildcard_and_typed_scopes() -> None:
    everything = readable_types(["system/*.read"])
    assert everything.all_types and everything.allows("Observation")
    some = readable_types(["system/Patient.rs", "system/Observation.read", "system/Condition.s"])
    assert not some.all_types
    assert some.types == frozenset({"Patient", "Observation"})
    assert some.allows("Patient") and not some.allows("Condition")


def test_granular_and_write_scopes_do_not_grant_read() -> None:
    access = readable_types(["system/Observation.rs?category=lab", "system/*.write"])
    assert not access.all_types
    assert access.types == frozenset()
    assert not access.allows("Observation")


def test_withheld_types_are_explained_in_plain_language() -> None:
    access = readable_types(["system/Patient.read"])
    assert access.explain_withheld(["Observation", "Condition"]) == (
        "Observation and Condition were requested but this client's token only grants "
        "system/Patient.read"
    )
    assert readable_types(["system/Patient.read", "system/Group.rs"]).describe() == (
        "system/Patient.read and system/Group.rs"
    )
    assert readable_types([]).explain_withheld(["Patient"]) == (
        "Patient was requested but this client's token only grants no scopes"
    )
    assert read_scope("Patient") == "system/Patient.read"
