"""FHIR search value escaping (http://hl7.org/fhir/R4/search.html#escaping): `\\,`,
`\\|`, `\\$` and `\\\\` stand for the characters themselves; unescaped `,` separates
values that are OR-ed and `|` separates a token's system from its code."""

from __future__ import annotations


def split_unescaped(text: str, separator: str) -> list[str]:
    """`text` split on every `separator` not preceded by a backslash; escapes kept."""
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    """The value with its escapes removed: `a\\,b` -> `a,b`."""
    out, escaped = [], False
    for char in text:
        if escaped or char != "\\":
            out.append(char)
            escaped = False
        else:
            escaped = True
    return "".join(out)


def escape(text: str) -> str:
    """The inverse of `unescape`, for a value written back into a query."""
    for char in ("\\", ",", "|", "$"):
        text = text.replace(char, f"\\{char}")
    return text
