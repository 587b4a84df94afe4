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
The store writes every body minified (fhirstore.writes.minified): no whitespace around
the colon and no escaped `/`, so a reference is always the same run of bytes,
`"reference":"Type/id`, and the scan looks for exactly that.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

from bulkops.fhir.params import SYSTEM

REFERENCED_TYPES: frozenset[str] = frozenset(
    {"Device", "Location", "Medication", "Organization", "Practitioner", "PractitionerRole"}
)

# `"reference":"Type/id`, then the end of the string or a version suffix; an id per
# http://hl7.org/fhir/R4/datatypes.html#id. No group: each distinct match is split once.
# Matching the whole run without groups, and with the exact prefix the store writes,
# scanned 80 MB of the 1M store's bodies in 81 ms, where a pattern that also allowed
# whitespace and `\/` and captured type and id took 107 ms.
_PREFIX = b'"reference":"'
_REFERENCE = re.compile(
    re.escape(_PREFIX)
    + b"(?:"
    + b"|".join(sorted(name.encode() for name in REFERENCED_TYPES))
    + rb')/[A-Za-z0-9\-.]{1,64}(?="|/_history/)'
)


def referenced_keys(records: bytes, types: Collection[str]) -> set[tuple[str, str]]:
    """(type, id) of every resource of `types` (a subset of REFERENCED_TYPES) that the
    JSON `records` refer to. Matches are deduplicated before they are decoded: a block of
    a Group export refers to the same few Practitioners and Organizations thousands of
    times, and decoding each match cost as much as finding them."""
    return _keys(_found(records), types)


def stored_references(body: str) -> str:
    """What the store keeps of a body it writes (fhirstore's `Resource.refers_to`): the
    "Type/id" of each resource of REFERENCED_TYPES it refers to, distinct, sorted,
    space-separated; "" for none. Found once, when the body is written, it spares every
    export that writes the body verbatim the search: in a Group export of the 1M store
    that search was a quarter of the workers' CPU (docs/performance.md)."""
    return " ".join(sorted(key.decode() for key in _found(body.encode())))


def indexed_keys(refers_to: bytes, types: Collection[str]) -> set[tuple[str, str]]:
    """`referenced_keys` of bodies from what the store keeps of them (`stored_references`
    values joined by spaces), as the bodies' search would find them."""
    return _keys(set(refers_to.split()), types)


def _found(records: bytes) -> set[bytes]:
    """The distinct b"Type/id" that the JSON `records` refer to (REFERENCED_TYPES)."""
    return {match[len(_PREFIX) :] for match in set(_REFERENCE.findall(records))}


def _keys(found: Iterable[bytes], types: Collection[str]) -> set[tuple[str, str]]:
    """(type, id) of each distinct b"Type/id" of `found` whose type is one of `types`."""
    keys = set()
    for key in found:
        name, _, resource_id = key.decode().partition("/")
        if name in types:
            keys.add((name, resource_id))
    return keys


def referenced_types(level: str, types: Collection[str]) -> list[str]:
    """Which of an export's `types` a Patient or Group export adds for the resources its
    output refers to (none at system level, where every type is exported whole)."""
    if level == SYSTEM:
        return []
    return sorted(name for name in types if name in REFERENCED_TYPES)
