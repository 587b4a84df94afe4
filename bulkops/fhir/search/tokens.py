"""Token search (http://hl7.org/fhir/R4/search.html#token): codes, identifiers, booleans.

`code` matches the code whatever its system, `system|code` both, `|code` a code without
a system, `system|` any code of the system. Coding and CodeableConcept match on
system and code (any coding of the concept), Identifier on system and value,
ContactPoint on its value alone. A primitive (`code`, `id`, `uri`, `string`, `boolean`)
has no system of its own in the resource: it matches on its value, whatever system the
search names. Matching is exact (case-sensitive), as codes are.

`:text` searches the text that goes with a code instead (CodeableConcept.text,
Coding.display, Identifier.type.text): a word of it starting with the search text, case
and accents ignored, so `code:text=rate` finds "Heart rate".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bulkops.fhir.search.escapes import split_unescaped, unescape
from bulkops.fhir.search.strings import normalized

# ContactPoint.system codes: a dict with one of these as `system` is a ContactPoint,
# whose token is its value (R4: the system is not used).
CONTACT_POINT_SYSTEMS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})


@dataclass(frozen=True)
class Coding:
    """One system/code pair a resource value offers to token search."""

    system: str | None
    code: str | None
    primitive: bool = False


def codings(value: Any) -> list[Coding]:
    if isinstance(value, bool):
        return [Coding(None, "true" if value else "false", primitive=True)]
    if isinstance(value, str | int):
        return [Coding(None, str(value), primitive=True)]
    if not isinstance(value, dict):
        return []
    if "coding" in value:  # CodeableConcept
        return [c for coding in value.get("coding") or [] for c in codings(coding)]
    if "value" in value:  # Identifier, or ContactPoint
        system = value.get("system")
        if system in CONTACT_POINT_SYSTEMS:
            system = None
        return [Coding(_text(system), _text(value.get("value")))]
    if "code" in value or "system" in value:  # Coding
        return [Coding(_text(value.get("system")), _text(value.get("code")))]
    return []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class TokenValue:
    system: str | None  # None: any system; "": no system
    code: str | None  # None: any code

    def matches(self, value: Any) -> bool:
        return any(self.matches_coding(coding) for coding in codings(value))

    def matches_coding(self, coding: Coding) -> bool:
        if self.code is not None and coding.code != self.code:
            return False
        if coding.primitive:
            return coding.code is not None
        if self.system is None:
            return True
        if self.system == "":
            return not coding.system
        return coding.system == self.system


def parse_token(text: str) -> TokenValue | None:
    """`code`, `system|code`, `|code` or `system|`; None when empty or malformed."""
    parts = split_unescaped(text, "|")
    if len(parts) == 1:
        return TokenValue(None, unescape(parts[0])) if parts[0] else None
    if len(parts) != 2 or parts == ["", ""]:
        return None
    system, code = unescape(parts[0]), unescape(parts[1])
    return TokenValue(system, code or None)


@dataclass(frozen=True)
class TokenText:
    """`:text`: a word of the code's text starts with `text` (both normalised)."""

    text: str

    def matches(self, value: Any) -> bool:
        return any(_has_word_starting(normalized(t), self.text) for t in token_texts(value))


def _has_word_starting(text: str, prefix: str) -> bool:
    return any(
        text.startswith(prefix, index)
        for index in range(len(text))
        if index == 0 or not text[index - 1].isalnum()
    )


def token_texts(value: Any) -> list[str]:
    """The text R4's `:text` modifier searches for a value (see the module docstring)."""
    if not isinstance(value, dict):
        return []
    texts = [value.get("text"), value.get("display")]
    texts += [
        coding.get("display") for coding in value.get("coding") or [] if isinstance(coding, dict)
    ]
    kind = value.get("type")
    if isinstance(kind, dict):  # Identifier.type
        texts.append(kind.get("text"))
    return [text for text in texts if isinstance(text, str)]
