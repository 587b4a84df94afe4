"""Comparison prefixes of ordered search values (number, date, quantity): `ge2024`,
`lt5.4`. http://hl7.org/fhir/R4/search.html#prefix"""

from __future__ import annotations

EQ, NE, GT, LT, GE, LE, SA, EB, AP = "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"
PREFIXES = (EQ, NE, GT, LT, GE, LE, SA, EB, AP)
# `ap` widens the search value by this share of it (R4's recommended 10%); for a date,
# of the distance between the date and now.
APPROXIMATELY = 0.1


def split_prefix(text: str) -> tuple[str, str]:
    """(prefix, rest): `ge2024` -> ("ge", "2024"); no prefix means `eq`."""
    if text[:2] in PREFIXES:
        return text[:2], text[2:]
    return EQ, text
