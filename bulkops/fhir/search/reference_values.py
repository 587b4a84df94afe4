"""Reference search (http://hl7.org/fhir/R4/search.html#reference).

`subject=Patient/123` matches references to that resource, `subject=123` references
with that id to any type the parameter allows, `subject:Patient=123` the same as
`Patient/123`. An absolute URL on this server (`https://this.server/fhir/Patient/123`)
is read as `Patient/123`; any other absolute URL matches references written exactly so.
In resources, relative references (`Patient/123`, with or without `/_history/n`) are
compared by type and id, absolute ones (another server's) only by their whole text.
Canonical and uri elements that reference parameters search are compared as text too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bulkops.fhir.references import ID_PATTERN, is_valid_id
from bulkops.fhir.resource_types import is_resource_type

_RELATIVE = re.compile(rf"^(?P<type>[A-Z][A-Za-z]+)/(?P<id>{ID_PATTERN})(?:/_history/[^/]+)?$")


class BadReference(ValueError):
    """A reference search value that cannot match anything (the message says why)."""


@dataclass(frozen=True)
class ReferenceValue:
    resource_type: str | None  # None: an id of any type
    resource_id: str | None
    url: str | None  # an absolute URL of another server, compared as written

    @property
    def text(self) -> str:
        """The value as a query carries it, references to this server made relative."""
        if self.url is not None:
            return self.url
        return (
            f"{self.resource_type}/{self.resource_id}"
            if self.resource_type
            else str(self.resource_id)
        )

    def matches(self, value: Any) -> bool:
        reference = value.get("reference") if isinstance(value, dict) else value
        if not isinstance(reference, str):
            return False
        if self.url is not None:
            return reference == self.url
        relative = _RELATIVE.match(reference)
        if relative is None:
            return False
        return relative["id"] == self.resource_id and self.resource_type in (None, relative["type"])


def parse_reference_value(
    text: str, *, type_modifier: str, targets: tuple[str, ...], base_url: str
) -> ReferenceValue:
    """Read one reference search value; raise BadReference when it is malformed or names
    a type the parameter never points at. `base_url` is this server's FHIR base."""
    if base_url and text.startswith(f"{base_url.rstrip('/')}/"):
        text = text[len(base_url.rstrip("/")) + 1 :]
    elif text.startswith(("http://", "https://", "urn:")):
        if type_modifier:
            raise BadReference(f"with :{type_modifier} the value must be an id, not {text!r}")
        return ReferenceValue(None, None, text)
    relative = _RELATIVE.match(text)
    if relative is not None:
        resource_type, resource_id = relative["type"], relative["id"]
        if type_modifier and type_modifier != resource_type:
            raise BadReference(f"{text!r} is not a {type_modifier}")
    elif is_valid_id(text):
        resource_type, resource_id = type_modifier or None, text
    else:
        raise BadReference(f"{text!r} is not a reference like Type/id, an id or a URL")
    if resource_type is not None:
        _check_target(resource_type, targets)
    return ReferenceValue(resource_type, resource_id, None)


def _check_target(resource_type: str, targets: tuple[str, ...]) -> None:
    if not is_resource_type(resource_type):
        raise BadReference(f"{resource_type} is not a FHIR R4 resource type")
    if targets and resource_type not in targets and "Resource" not in targets:
        raise BadReference(f"it refers to {', '.join(sorted(targets))}, never to {resource_type}")
