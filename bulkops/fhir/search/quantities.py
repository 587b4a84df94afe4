"""Number and quantity search (http://hl7.org/fhir/R4/search.html#number, #quantity).

A number without a prefix matches within its implicit precision: `100` is [99.5, 100.5),
`100.00` is [99.995, 100.005), half a unit of its last significant digit either side
(`1e2` is [50, 150)). `ne` is the complement of that range; `gt`, `lt`, `ge`, `le`
(and `sa`, `eb`, which mean the same for a single number) compare with the exact value;
`ap` accepts values within 10% of it. A quantity is `[prefix]number|system|code`: with
a system the resource's system and code must both match; `number||code` matches the
code or the unit; a number alone matches whatever the unit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from bulkops.fhir.resource_json import JsonNumber
from bulkops.fhir.search.prefixes import (
    APPROXIMATELY,
    EB,
    EQ,
    GE,
    GT,
    LE,
    LT,
    NE,
    SA,
    split_prefix,
)

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
CURRENCY_SYSTEM = "urn:iso:std:iso:4217"  # Money.currency as a quantity's code


@dataclass(frozen=True)
class NumberValue:
    prefix: str
    value: Decimal
    low: Decimal  # the implicit precision range, [low, high)
    high: Decimal
    near: tuple[Decimal, Decimal]  # `ap`: within 10% of the value (around zero, its precision)

    def matches(self, target: Any) -> bool:
        number = to_decimal(target)
        return number is not None and self.accepts(number)

    def accepts(self, number: Decimal) -> bool:
        if self.prefix in (EQ, NE):
            return (self.low <= number < self.high) == (self.prefix == EQ)
        if self.prefix in (GT, SA):
            return number > self.value
        if self.prefix in (LT, EB):
            return number < self.value
        if self.prefix == GE:
            return number >= self.value
        if self.prefix == LE:
            return number <= self.value
        return self.near[0] <= number <= self.near[1]


def parse_number(text: str) -> NumberValue | None:
    """`[prefix]decimal`, or None when `text` is not one. Every bound is worked out
    here, so matching only compares; a number too large for that (`1e99999999999`) is
    not one either."""
    prefix, rest = split_prefix(text)
    if not _NUMBER.match(rest):
        return None
    try:
        value = Decimal(rest)
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)  # a finite number
        half_unit = Decimal(5).scaleb(exponent - 1)
        margin = abs(value) * Decimal(str(APPROXIMATELY)) or half_unit
        return NumberValue(
            prefix, value, value - half_unit, value + half_unit, (value - margin, value + margin)
        )
    except ArithmeticError:  # decimal's Overflow and InvalidOperation among them
        return None


def to_decimal(value: Any) -> Decimal | None:
    """A resource's numeric value (JSON number or decimal text) as a Decimal; None when
    decimal arithmetic cannot hold it (1e999999999999999999999)."""
    if isinstance(value, JsonNumber):
        value = value.text
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


@dataclass(frozen=True)
class QuantityValue:
    number: NumberValue
    system: str  # "" matches any system
    code: str  # "" matches any code or unit

    def matches(self, target: Any) -> bool:
        if not isinstance(target, dict):
            return False
        number = to_decimal(target.get("value"))
        if number is None or not self.number.accepts(number):
            return False
        system, code = target.get("system"), target.get("code")
        if "currency" in target:  # Money
            system, code = CURRENCY_SYSTEM, target["currency"]
        if self.system:
            return system == self.system and code == self.code
        return not self.code or self.code in (code, target.get("unit"))


def parse_quantity(parts: list[str]) -> QuantityValue | None:
    """A quantity from its `|`-separated parts (already unescaped): number, or number,
    system and code; None when malformed."""
    if len(parts) not in (1, 3):
        return None
    number = parse_number(parts[0])
    if number is None:
        return None
    system, code = (parts[1], parts[2]) if len(parts) == 3 else ("", "")
    if system and not code:
        return None
    return QuantityValue(number, system, code)
