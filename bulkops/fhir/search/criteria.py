"""Parsing a type-level search (`Observation?category=laboratory&date=ge2024`) into a
typed plan, and matching a parsed resource against it.

A query is a list of criteria that must all hold (AND); a criterion is one parameter,
an optional modifier and one or more comma-separated values of which any may match
(OR), or `:missing=true|false`. Everything is checked when the query is parsed: an
unknown parameter or modifier, a malformed value, or a part bulkops does not evaluate
(result parameters, chains, composite parameters) raises `UnsupportedSearch` naming
that part, so a parsed query always runs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import unquote

from bulkops.fhir.resource_types import R4_RESOURCE_TYPES
from bulkops.fhir.search import strings, uris
from bulkops.fhir.search.dates import DateValue, date_interval, zone_plus_restored
from bulkops.fhir.search.definitions import (
    COMPOSITE,
    DATE,
    NUMBER,
    QUANTITY,
    REFERENCE,
    SPECIAL,
    STRING,
    TOKEN,
    URI,
    SearchParameter,
    search_parameter,
)
from bulkops.fhir.search.escapes import escape, split_unescaped, unescape
from bulkops.fhir.search.extractors import Extractor, NotEvaluable, extractor
from bulkops.fhir.search.prefixes import split_prefix
from bulkops.fhir.search.quantities import parse_number, parse_quantity
from bulkops.fhir.search.reference_values import BadReference, parse_reference_value
from bulkops.fhir.search.tokens import TokenText, parse_token

MISSING = "missing"
NOT = "not"
TEXT = "text"
# Modifiers bulkops evaluates, by parameter type (`:missing` works for all; a reference
# parameter also takes a resource type, `subject:Patient=123`).
MODIFIERS: dict[str, tuple[str, ...]] = {
    TOKEN: (NOT, TEXT),
    STRING: (strings.EXACT, strings.CONTAINS),
    URI: (uris.BELOW, uris.ABOVE),
    REFERENCE: (),
    DATE: (),
    NUMBER: (),
    QUANTITY: (),
}
# How a reference parameter's resource-type modifier (`subject:Patient`) is documented.
TYPE_MODIFIER = "[type]"
# Parameters that shape a search's results rather than select resources.
RESULT_PARAMETERS = frozenset(
    {
        "_include",
        "_revinclude",
        "_sort",
        "_count",
        "_elements",
        "_summary",
        "_total",
        "_contained",
        "_containedType",
        "_format",
        "_pretty",
    }
)
# Bounds on one query: every criterion and value is checked against every resource of
# the type, so a query of a million values would hold a worker for hours.
MAX_CRITERIA = 50
MAX_VALUES = 1000


def supported_modifiers(parameter_type: str) -> tuple[str, ...]:
    """The modifiers bulkops evaluates on a parameter of `parameter_type`, as the
    CapabilityStatement, the OperationDefinitions and refusals name them."""
    modifiers = (MISSING, *MODIFIERS[parameter_type])
    return (*modifiers, TYPE_MODIFIER) if parameter_type == REFERENCE else modifiers


class UnsupportedSearch(ValueError):
    """A query, or a part of it, bulkops cannot evaluate; the message says which and why."""


class Value(Protocol):
    def matches(self, value: Any) -> bool: ...


@dataclass(frozen=True)
class Criterion:
    """One `name[:modifier]=value[,value...]` of a query."""

    parameter: SearchParameter
    modifier: str
    values: tuple[Value, ...]  # any may match
    missing: bool | None  # `:missing=true|false`, which takes no other values
    value_text: str  # the value as the query carries it (references to here made relative)

    @property
    def name(self) -> str:
        return f"{self.parameter.code}:{self.modifier}" if self.modifier else self.parameter.code

    @property
    def text(self) -> str:
        return f"{_encoded(self.name)}={_encoded(self.value_text)}"

    @functools.cached_property
    def extract(self) -> Extractor:
        """The parameter's compiled extractor, looked up once per criterion rather than
        once per resource (hashing the parameter costs as much as a match)."""
        return extractor(self.parameter)

    def matches(self, resource: dict[str, Any]) -> bool:
        found = self.extract(resource)
        if self.missing is not None:
            return (not found) == self.missing
        hit = any(value.matches(item) for item in found for value in self.values)
        return not hit if self.modifier == NOT else hit


@dataclass(frozen=True)
class TypeSearch:
    """A parsed type-level search: every criterion must match."""

    resource_type: str
    criteria: tuple[Criterion, ...]

    @property
    def text(self) -> str:
        """The query as bulkops reads it: `Type?name=value&...`, parseable again."""
        return f"{self.resource_type}?{'&'.join(c.text for c in self.criteria)}"

    def matches(self, resource: dict[str, Any]) -> bool:
        return all(criterion.matches(resource) for criterion in self.criteria)


def _encoded(text: str) -> str:
    """What `parse_type_search` decodes back to `text`."""
    return text.replace("%", "%25").replace("&", "%26")


def query_text(resource_type: str, pairs: list[tuple[str, str]]) -> str:
    """`Type?name=value&...` that `parse_type_search` reads back as `pairs`: how a
    search whose names and values are already decoded (a REST query) reaches the parser."""
    return f"{resource_type}?{'&'.join(f'{_encoded(n)}={_encoded(v)}' for n, v in pairs)}"


def check_parameter(resource_type: str, name: str) -> None:
    """Raise UnsupportedSearch when `name` (`code[:modifier]`) is not a parameter and
    modifier of `resource_type` that bulkops evaluates, whatever the value: what a
    lenient search may ignore, where a bad value is refused."""
    _parameter(resource_type, name)


def parse_type_search(text: str, *, now: datetime, base_url: str = "") -> TypeSearch:
    """Parse `Type?criteria`; raise UnsupportedSearch naming the part that fails.

    Names and values are percent-decoded once more (a `_typeFilter` value is a query
    within a query) but `+` stays `+`, as in a time zone. `now` anchors `ap` on dates;
    `base_url`, this server's FHIR base, makes absolute references to it relative.
    """
    if "\x00" in unquote(text):  # PostgreSQL refuses NUL in text and jsonb
        raise UnsupportedSearch("it contains a NUL character")
    resource_type, mark, query = text.strip().partition("?")
    if not mark:
        raise UnsupportedSearch("it is not a search like Type?parameter=value")
    if resource_type not in R4_RESOURCE_TYPES:
        raise UnsupportedSearch(f"{resource_type!r} is not a FHIR R4 resource type")
    pairs = _pairs(query)
    if not pairs:
        raise UnsupportedSearch("it names no search parameter")
    if len(pairs) > MAX_CRITERIA:
        raise UnsupportedSearch(f"it has {len(pairs)} criteria; at most {MAX_CRITERIA} work")
    criteria = tuple(
        _criterion(resource_type, unquote(name), unquote(value), now=now, base_url=base_url)
        for name, value in pairs
    )
    return TypeSearch(resource_type, criteria)


def _pairs(query: str) -> list[tuple[str, str]]:
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        name, equals, value = part.partition("=")
        if not equals:
            raise UnsupportedSearch(f"{unquote(name)!r} has no value (name=value)")
        pairs.append((name, value))
    return pairs


def _criterion(
    resource_type: str, name: str, value: str, *, now: datetime, base_url: str
) -> Criterion:
    parameter, modifier = _parameter(resource_type, name)
    if not value:
        raise UnsupportedSearch(f"{name} has no value")
    if modifier == MISSING:
        if value not in ("true", "false"):
            raise UnsupportedSearch(f"{name} must be true or false, not {value!r}")
        return Criterion(parameter, modifier, (), value == "true", value)
    read = _VALUE_READERS[parameter.type]
    values, texts = [], []
    parts = split_unescaped(value, ",")
    if len(parts) > MAX_VALUES:
        raise UnsupportedSearch(f"{name} has {len(parts)} values; at most {MAX_VALUES} work")
    for part in parts:
        parsed, part_text = read(part, modifier, parameter, now, base_url)
        values.append(parsed)
        texts.append(part_text)
    return Criterion(parameter, modifier, tuple(values), None, ",".join(texts))


def _parameter(resource_type: str, name: str) -> tuple[SearchParameter, str]:
    """The parameter and modifier `name` stands for, or why it cannot be searched."""
    if name.startswith("_has:") or name == "_has":
        raise UnsupportedSearch(f"{name} is a reverse chain (_has), which bulkops does not support")
    if name in RESULT_PARAMETERS:
        raise UnsupportedSearch(f"{name} is a result parameter: it shapes results, selects nothing")
    code, _, modifier = name.partition(":")
    if "." in name:
        raise UnsupportedSearch(f"{name} is a chained parameter, which bulkops does not support")
    parameter = search_parameter(resource_type, code)
    if parameter is None:
        raise UnsupportedSearch(f"{resource_type} has no search parameter {code!r} in FHIR R4")
    if parameter.type in (COMPOSITE, SPECIAL):
        raise UnsupportedSearch(
            f"{code} is a {parameter.type} parameter, which bulkops does not support"
        )
    try:
        extractor(parameter)
    except NotEvaluable:
        raise UnsupportedSearch(f"bulkops cannot evaluate {code}") from None
    _check_modifier(parameter, modifier)
    return parameter, modifier


def _check_modifier(parameter: SearchParameter, modifier: str) -> None:
    if modifier in ("", MISSING) or modifier in MODIFIERS[parameter.type]:
        return
    if parameter.type == REFERENCE and modifier in R4_RESOURCE_TYPES:
        if parameter.targets and modifier not in parameter.targets:
            raise UnsupportedSearch(
                f"{parameter.code} refers to {', '.join(sorted(parameter.targets))}, "
                f"never to {modifier}"
            )
        return
    supported = [f":{m}" for m in supported_modifiers(parameter.type)]
    raise UnsupportedSearch(
        f"the modifier :{modifier} is not supported on {parameter.code}, a "
        f"{parameter.type} parameter (bulkops supports {', '.join(supported)})"
    )


# Each reader turns one comma-separated value into a matcher and its text in the query.
Reader = Callable[[str, str, SearchParameter, datetime, str], tuple[Value, str]]


def _token(part: str, modifier: str, parameter: SearchParameter, *_: Any) -> tuple[Value, str]:
    if modifier == TEXT:
        return TokenText(strings.normalized(unescape(part))), part
    token = parse_token(part)
    if token is None:
        raise UnsupportedSearch(
            f"{parameter.code} value {part!r} is not code, system|code, |code or system|"
        )
    return token, part


def _string(part: str, modifier: str, *_: Any) -> tuple[Value, str]:
    return strings.string_value(unescape(part), modifier or strings.STARTS), part


def _uri(part: str, modifier: str, *_: Any) -> tuple[Value, str]:
    return uris.UriValue(unescape(part), modifier), part


def _date(
    part: str, modifier: str, parameter: SearchParameter, now: datetime, *_: Any
) -> tuple[Value, str]:
    text = zone_plus_restored(part)
    prefix, rest = split_prefix(text)
    interval = date_interval(rest)
    if interval is None:
        raise UnsupportedSearch(
            f"{parameter.code} value {part!r} is not a date like 2024, 2024-01-31 or "
            "2024-01-31T12:00:00Z, optionally after a prefix such as ge"
        )
    return DateValue(prefix, interval, now), text


def _number(part: str, modifier: str, parameter: SearchParameter, *_: Any) -> tuple[Value, str]:
    number = parse_number(part)
    if number is None:
        raise UnsupportedSearch(f"{parameter.code} value {part!r} is not a number like 5.4 or ge5")
    return number, part


def _quantity(part: str, modifier: str, parameter: SearchParameter, *_: Any) -> tuple[Value, str]:
    quantity = parse_quantity([unescape(p) for p in split_unescaped(part, "|")])
    if quantity is None:
        raise UnsupportedSearch(
            f"{parameter.code} value {part!r} is not a quantity like 5.4, "
            "gt5.4|http://unitsofmeasure.org|mg or 5.4||mg"
        )
    return quantity, part


def _reference(
    part: str, modifier: str, parameter: SearchParameter, now: datetime, base_url: str
) -> tuple[Value, str]:
    try:
        reference = parse_reference_value(
            unescape(part), type_modifier=modifier, targets=parameter.targets, base_url=base_url
        )
    except BadReference as error:
        raise UnsupportedSearch(f"{parameter.code} value {part!r}: {error}") from None
    return reference, escape(reference.text)


_VALUE_READERS: dict[str, Reader] = {
    TOKEN: _token,
    STRING: _string,
    URI: _uri,
    DATE: _date,
    NUMBER: _number,
    QUANTITY: _quantity,
    REFERENCE: _reference,
}
