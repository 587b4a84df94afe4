"""URI search (http://hl7.org/fhir/R4/search.html#uri): the whole URI by default;
`:below` matches URIs that start with the value, `:above` URIs the value starts with.
A canonical reference's `|version` is ignored unless the value names one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EXACT = ""
BELOW = "below"
ABOVE = "above"


@dataclass(frozen=True)
class UriValue:
    uri: str
    mode: str

    def matches(self, value: Any) -> bool:
        if not isinstance(value, str):
            return False
        candidates = {value, value.partition("|")[0]} if "|" not in self.uri else {value}
        if self.mode == BELOW:
            return any(candidate.startswith(self.uri) for candidate in candidates)
        if self.mode == ABOVE:
            return any(self.uri.startswith(candidate) for candidate in candidates)
        return self.uri in candidates
