"""FHIR R4 type-level search, without Django: `Observation?category=laboratory`.

The shared engine behind `_typeFilter` (and, later, type-level search and Bulk Cohort
member filters):

- `definitions`: every R4 search parameter of a type, from the official definitions;
- `criteria`: a query parsed into a typed plan (`TypeSearch`), refusing what bulkops
  cannot evaluate with a message naming the part;
- `extractors`: each parameter's FHIRPath compiled once (fhirpathpy);
- `tokens`, `strings`, `dates`, `quantities`, `reference_values`, `uris`: how a value
  of each parameter type matches.

`parse_type_search(text, now=...)` gives a `TypeSearch` whose `matches(resource)` takes
a parsed resource (a dict).
"""

from __future__ import annotations

from bulkops.fhir.search.criteria import Criterion, TypeSearch, UnsupportedSearch, parse_type_search

__all__ = ["Criterion", "TypeSearch", "UnsupportedSearch", "parse_type_search"]
