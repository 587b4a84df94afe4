"""What other apps add to the console's export pages, so exports need not know them.

Remote exports (the remotes app) are ExportJobs too: their job page shows the remote's
progress, manifest and exchange log, the export list names the server they came from,
and the launch page offers the remote servers as other sources. An app registers its
builders in its AppConfig.ready; a panel builder returns None for jobs it has nothing to
say about.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from exports.models import ExportFile, ExportJob


@dataclass(frozen=True)
class JobPanel:
    template: str  # on the job page, below the request
    live_template: str = ""  # inside the polled progress section
    context: dict[str, Any] = field(default_factory=dict)
    can_rerun: bool = True  # False: "Run again" would re-run the job here, not there
    # Files whose contents the panel shows: each page view is audited as a read of them.
    files_shown: tuple[ExportFile, ...] = ()


PanelBuilder = Callable[[ExportJob], JobPanel | None]
_builders: list[PanelBuilder] = []


def register_panel(builder: PanelBuilder) -> None:
    if builder not in _builders:
        _builders.append(builder)


def panels_for(job: ExportJob) -> list[JobPanel]:
    return [panel for builder in _builders if (panel := builder(job)) is not None]


@dataclass(frozen=True)
class LaunchSource:
    """Another place an export can come from: a label and the URL of its launch form."""

    label: str
    url: str


SourceLister = Callable[[], list[LaunchSource]]
_listers: list[SourceLister] = []


def register_sources(lister: SourceLister) -> None:
    if lister not in _listers:
        _listers.append(lister)


def launch_sources() -> list[LaunchSource]:
    return [source for lister in _listers for source in lister()]


# Who a job without a client is for, when it is not the console's own export (a pull
# from a remote server): job pk -> a label for the export list and the job page.
JobLabeller = Callable[[list[ExportJob]], dict[int, str]]
_labellers: list[JobLabeller] = []


def register_job_labels(labeller: JobLabeller) -> None:
    if labeller not in _labellers:
        _labellers.append(labeller)


def job_labels(jobs: list[ExportJob]) -> dict[int, str]:
    labels: dict[int, str] = {}
    for labeller in _labellers:
        labels.update(labeller(jobs))
    return labels
