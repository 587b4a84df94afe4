"""Per-parameter value extractors: the FHIRPath of a search parameter, compiled once.

fhirpathpy (with its R4 model, which resolves choice elements such as `value[x]`)
evaluates the official expressions. Each (type, parameter) is compiled the first time a
filter names it and reused for every resource of every export in the process. Plain
member paths, most of them, are compiled to direct walks over the JSON instead
(search/paths.py), an order of magnitude faster.

Two forms in the R4 definitions are rewritten before compiling:

- `X.where(resolve() is Patient)` cannot run without a server to resolve references. It
  only keeps references whose target is a Patient, so the extractor evaluates `X` and
  keeps the references of that type itself.
- `X as T` and `X.as(T)` are defined on a single item, and fhirpathpy enforces it: an
  Observation with two components would fail `Observation.component.value as Quantity`.
  `X.ofType(T)` keeps every item of type T, which is what a search means (the R5
  definitions say `ofType`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fhirpathpy import compile as compile_fhirpath
from fhirpathpy.models import models

from bulkops.fhir.references import parse_reference
from bulkops.fhir.search.definitions import SearchParameter
from bulkops.fhir.search.paths import compile_path

_R4 = models["r4"]
_RESOLVE_IS = re.compile(r"^(?P<path>.+)\.where\(resolve\(\) is (?P<type>[A-Z][A-Za-z]+)\)$")
_AS_OPERATOR = re.compile(r"\s+as\s+(?P<type>[A-Za-z]+)$")
_AS_FUNCTION = re.compile(r"\.as\((?P<type>[A-Za-z]+)\)")


class NotEvaluable(ValueError):
    """The parameter's expression is one bulkops cannot evaluate."""


@dataclass(frozen=True)
class _Path:
    evaluate: Callable[[dict[str, Any]], list[Any]]
    target_type: str | None  # keep only references to this type


class Extractor:
    """The values a parameter takes in one resource (FHIRPath semantics: a flat list of
    primitives and complex values as JSON)."""

    def __init__(self, parameter: SearchParameter) -> None:
        if not parameter.paths:
            raise NotEvaluable(f"R4 gives {parameter.code} no expression to evaluate")
        self.paths = tuple(_compiled(path) for path in parameter.paths)

    def __call__(self, resource: dict[str, Any]) -> list[Any]:
        values: list[Any] = []
        for path in self.paths:
            found = _evaluated(path, resource)
            if path.target_type is not None:
                found = [value for value in found if _refers_to(value, path.target_type)]
            values.extend(found)
        return values


def _evaluated(path: _Path, resource: dict[str, Any]) -> list[Any]:
    """The path's values; none when the data is too malformed for FHIRPath to walk (an
    element of the wrong JSON type), as a search finds nothing there."""
    try:
        return path.evaluate(resource)
    except Exception:  # fhirpathpy raises plain Exceptions
        return []


def _compiled(path: str) -> _Path:
    match = _RESOLVE_IS.match(path)
    expression, target_type = (match["path"], match["type"]) if match else (path, None)
    expression = _AS_FUNCTION.sub(
        r".ofType(\g<type>)", _AS_OPERATOR.sub(r".ofType(\g<type>)", expression)
    )
    if (walk := compile_path(expression)) is not None:
        return _Path(walk, target_type)
    try:
        return _Path(compile_fhirpath(expression, _R4), target_type)
    except Exception as error:  # fhirpathpy raises plain Exceptions
        raise NotEvaluable(f"cannot evaluate {expression!r}: {error}") from None


def _refers_to(value: Any, resource_type: str) -> bool:
    if not isinstance(value, dict) or not isinstance(value.get("reference"), str):
        return False
    key = parse_reference(value["reference"])
    return key is not None and key.resource_type == resource_type


@functools.cache
def extractor(parameter: SearchParameter) -> Extractor:
    """The compiled extractor of `parameter`, built on first use; raises NotEvaluable."""
    return Extractor(parameter)
