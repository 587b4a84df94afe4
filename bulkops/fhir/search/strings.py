"""String search (http://hl7.org/fhir/R4/search.html#string).

By default a value matches when it starts with the search text, ignoring case and
accents (`name=jose` finds "José"); `:contains` matches anywhere in it, the same way;
`:exact` needs the whole value, case and accents included. A HumanName or Address
offers each of its parts (family, given, city, line...), so `name=smi` finds any name
with a part starting "Smi".
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

STARTS = "starts"
EXACT = "exact"
CONTAINS = "contains"

# The parts of HumanName and Address that string search reads.
NAME_AND_ADDRESS_PARTS = (
    "text",
    "family",
    "given",
    "prefix",
    "suffix",
    "line",
    "city",
    "district",
    "state",
    "postalCode",
    "country",
)


def normalized(text: str) -> str:
    """`text` without accents, case-folded: what default string search compares."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def string_parts(value: Any) -> list[str]:
    """The strings a resource value offers to string search."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, dict):
        return []
    parts: list[str] = []
    for key in NAME_AND_ADDRESS_PARTS:
        found = value.get(key)
        for item in found if isinstance(found, list) else [found]:
            if isinstance(item, str):
                parts.append(item)
    return parts


@dataclass(frozen=True)
class StringValue:
    text: str  # normalised, except for :exact
    mode: str

    def matches(self, value: Any) -> bool:
        for part in string_parts(value):
            if self.mode == EXACT:
                if part == self.text:
                    return True
            elif self.mode == CONTAINS:
                if self.text in normalized(part):
                    return True
            elif normalized(part).startswith(self.text):
                return True
        return False


def string_value(text: str, mode: str) -> StringValue:
    return StringValue(text if mode == EXACT else normalized(text), mode)
