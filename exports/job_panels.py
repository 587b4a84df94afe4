"""Sections other apps add to the console's job page, so exports need not know them.

Remote exports (the remotes app) are ExportJobs too; their page shows the remote's
progress, manifest and exchange log. An app registers a builder in its AppConfig.ready;
a builder returns None for jobs it has nothing to say about.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from exports.models import ExportJob


@dataclass(frozen=True)
class JobPanel:
    template: str  # on the job page, below the request
    live_template: str = ""  # inside the polled progress section
    context: dict[str, Any] = field(default_factory=dict)
    can_rerun: bool = True  # False: "Run again" would re-run the job here, not there


PanelBuilder = Callable[[ExportJob], JobPanel | None]
_builders: list[PanelBuilder] = []


def register(builder: PanelBuilder) -> None:
    if builder not in _builders:
        _builders.append(builder)


def panels_for(job: ExportJob) -> list[JobPanel]:
    return [panel for builder in _builders if (panel := builder(job)) is not None]
