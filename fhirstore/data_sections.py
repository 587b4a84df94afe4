"""Sections other apps add to the console's Data page, so the store need not know them.

An app registers a builder in its AppConfig.ready; the builder returns the template and
context of its section, or None when it has nothing to show.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DataSection:
    template: str
    context: dict[str, Any] = field(default_factory=dict)


SectionBuilder = Callable[[], DataSection | None]
_builders: list[SectionBuilder] = []


def register_section(builder: SectionBuilder) -> None:
    if builder not in _builders:
        _builders.append(builder)


def data_sections() -> list[DataSection]:
    return [section for builder in _builders if (section := builder()) is not None]
