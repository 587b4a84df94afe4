"""Plain member paths (`Observation.code`, `Observation.value.ofType(Quantity)`) compiled
to walks over the parsed JSON.

Most R4 search expressions are such paths. fhirpathpy evaluates them in 12-35 µs a
resource; a dict walk takes about 1 µs, which decides whether a filtered export keeps
up with an unfiltered one (docs/performance.md). fhirpathpy's own R4 model says which
elements are choices (`value[x]`: `valueQuantity`, `valueString`...) and what type each
element has, so the walk follows the same definitions. Anything else (`where`,
`exists`, a choice in the middle of a path, a path the model does not know) returns
None here and is left to fhirpathpy; tests/fhir/test_search_paths.py checks that both
give the same values on real data.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from fhirpathpy.models import models

from bulkops.fhir.walk import walk

_R4 = models["r4"]
_PATH = re.compile(
    r"^(?P<head>[A-Z][A-Za-z]+)(?P<steps>(\.[a-z][A-Za-z0-9]*)+)(\.ofType\((?P<type>[A-Za-z]+)\))?$"
)
# Element types a path may walk into: the structure continues under the element's own
# path (BackboneElement) or under the data type's name (CodeableConcept.coding...).
_NESTED = ("BackboneElement", "Element")

Walk = Callable[[dict[str, Any]], list[Any]]


def compile_path(expression: str) -> Walk | None:
    """A walk that gives what fhirpathpy gives for `expression`, or None when the
    expression is not a plain member path this module can follow."""
    match = _PATH.match(expression)
    if match is None:
        return None
    keys = _keys(match["head"], match["steps"][1:].split("."), match["type"])
    if keys is None:
        return None
    return lambda resource: list(walk(resource, keys))


def _keys(head: str, names: list[str], of_type: str | None) -> list[tuple[str, ...]] | None:
    """The JSON keys each step may take (several for a choice element), or None."""
    keys: list[tuple[str, ...]] = []
    type_path = head
    for index, name in enumerate(names):
        path = f"{type_path}.{name}"
        path = _R4["pathsDefinedElsewhere"].get(path, path)
        last = index == len(names) - 1
        if path in _R4["choiceTypePaths"]:
            choices = _R4["choiceTypePaths"][path]
            if not last:
                return None
            if of_type is not None:
                choices = [c for c in choices if c.lower() == of_type.lower()]
            keys.append(tuple(f"{name}{choice[0].upper()}{choice[1:]}" for choice in choices))
            return keys
        element_type = _R4["path2Type"].get(path)
        if element_type is None and path in _backbone_paths():
            element_type = "BackboneElement"  # the model lists only its children
        if element_type is None or (of_type is not None and last):
            return None
        keys.append((name,))
        type_path = path if element_type in _NESTED else element_type
    return keys


@functools.cache
def _backbone_paths() -> frozenset[str]:
    """Paths of elements the model describes only through their children."""
    known = [*_R4["path2Type"], *_R4["choiceTypePaths"]]
    return frozenset(path.rpartition(".")[0] for path in known)
