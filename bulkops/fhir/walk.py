"""Walking parsed FHIR JSON along element names, the way FHIRPath navigates."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any


def walk(node: Any, steps: Sequence[Collection[str]]) -> Iterator[Any]:
    """Every value under `steps`, each step one of several keys (a choice element's
    `valueQuantity`, `valueString`...), flattening lists as FHIRPath does."""
    if isinstance(node, list):
        for item in node:
            yield from walk(item, steps)
        return
    if not steps:
        yield node
        return
    if isinstance(node, dict):
        for key in steps[0]:
            if key in node:
                yield from walk(node[key], steps[1:])
