"""Resources outside the Patient compartment that Patient and Group exports add.

A cohort's data refers to the people, places and things its care involved: an Encounter
to its Practitioners, Location and Organization, a MedicationRequest to its Medication,
a Procedure to a Device. None of those is in the R4 Patient compartment, so a Group
export of compartment data alone leaves every such reference dangling. bulkops adds the
resources of REFERENCED_TYPES that the exported resources refer to (spec §5.4 allows it
and asks that it be documented; ONC (g)(10) test kits expect Location, Organization,
Practitioner and implantable Devices in Group exports), and those they in turn refer to
(a Location's managing Organization, a PractitionerRole's Practitioner), once each per
export.

References are found in the NDJSON lines an export writes, as bytes, without parsing:
stored bodies are JSON, and a Reference's `reference` element is the only one named
so. Only relative references (`Practitioner/123`, `Practitioner/123/_history/2`) name a
stored resource; absolute, contained (`#x`) and conditional ones are left as they are.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from bulkops.fhir.params import SYSTEM

REFERENCED_TYPES: frozenset[str] = frozenset(
    {"Device", "Location", "Medication", "Organization", "Practitioner", "PractitionerRole"}
)

# `"reference":"Type/id"`, whitespace around the colon and JSON's optional `\/` escape
# allowed, a version suffix ignored. Ids per http://hl7.org/fhir/R4/datatypes.html#id.
_SLASH = rb"(?:/|\\/)"
_REFERENCE = re.compile(
    rb'"reference"\s*:\s*"('
    + b"|".join(sorted(name.encode() for name in REFERENCED_TYPES))
    + rb")"
    + _SLASH
    + rb"([A-Za-z0-9\-.]{1,64})(?:"
    + _SLASH
    + rb'_history[^"]*)?"'
)


def referenced_keys(records: bytes, types: Collection[str]) -> set[tuple[str, str]]:
    """(type, id) of every resource of `types` (a subset of REFERENCED_TYPES) that the
    JSON `records` refer to. Matches are deduplicated before they are decoded: a block of
    a Group export refers to the same few Practitioners and Organizations thousands of
    times, and decoding each match cost as much as finding them."""
    return {
        (name, raw_id.decode())
        for raw_type, raw_id in set(_REFERENCE.findall(records))
        if (name := raw_type.decode()) in types
    }


def referenced_types(level: str, types: Collection[str]) -> list[str]:
    """Which of an export's `types` a Patient or Group export adds for the resources its
    output refers to (none at system level, where every type is exported whole)."""
    if level == SYSTEM:
        return []
    return sorted(name for name in types if name in REFERENCED_TYPES)
