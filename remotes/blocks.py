"""Block boundaries of an organised output file (v4 `organizeOutputBy`, digest §1.7),
checked line by line as the file streams in: each block is led by the IG's Parameters
header line naming an instance of the organising type, then that instance, then the
resources that belong to it. Only a file's first block may lack its leading instance:
it may continue a block split at the end of the previous file (`continuesInFile`)."""

from __future__ import annotations

from typing import Any

from bulkops.fhir.references import is_valid_id


class BlockError(ValueError):
    """The file breaks the block layout; the message says where."""


def header_id(resource: dict[str, Any], organized_by: str) -> str | None:
    """The id a block header names (`{"resourceType":"Parameters","parameter":[{"name":
    "header","valueReference":{"reference":"Patient/p1"}}]}`), None for any other line.
    A Parameters line that is no well-formed header is a BlockError: no other
    Parameters belong in an organised file."""
    if resource.get("resourceType") != "Parameters":
        return None
    parameters = resource.get("parameter")
    header = parameters[0] if isinstance(parameters, list) and len(parameters) == 1 else None
    if not isinstance(header, dict) or header.get("name") != "header":
        raise BlockError("a Parameters line is not a block header")
    reference = header.get("valueReference")
    text = reference.get("reference") if isinstance(reference, dict) else None
    kind, _, resource_id = text.partition("/") if isinstance(text, str) else ("", "", "")
    if kind != organized_by or not is_valid_id(resource_id):
        raise BlockError(f"a block header names {text!r}, not a {organized_by}")
    return resource_id


class BlockReader:
    """Follows one file's blocks; `line` takes each resource in order, `finish` the end."""

    def __init__(self, organized_by: str) -> None:
        self.organized_by = organized_by
        self.blocks = 0
        self.current = ""  # the id the open block's header names
        self._leading = False  # the open block still waits for its leading instance

    def line(self, resource: dict[str, Any], number: int) -> None:
        named = header_id(resource, self.organized_by)
        if named is not None:
            self._close(number)
            self.blocks, self.current, self._leading = self.blocks + 1, named, True
            return
        if not self.blocks:
            raise BlockError(f"line {number} comes before the first block header")
        if self._leading:
            self._leading = False
            if self.blocks > 1 and (
                resource.get("resourceType"),
                resource.get("id"),
            ) != (self.organized_by, self.current):
                raise BlockError(
                    f"line {number} is not {self.organized_by}/{self.current}, whose block "
                    "its header opens"
                )

    def finish(self, number: int) -> None:
        self._close(number)

    def _close(self, number: int) -> None:
        if self._leading and self.blocks > 1:
            raise BlockError(
                f"the block of {self.organized_by}/{self.current} ends at line {number} "
                f"without the {self.organized_by}"
            )
