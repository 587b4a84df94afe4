"""The remote part of the console's export pages: on a job page, what the remote said
and what we did about it; on the launch page, the remote servers to export from."""

from __future__ import annotations

import json

from django.urls import reverse

from exports.console_hooks import JobPanel, LaunchSource
from exports.forms import bulk_data_label
from exports.models import ExportFile, ExportJob
from remotes.models import RemoteExport, RemoteServer

PHASES = [
    (RemoteExport.Phase.TOKEN, "Token"),
    (RemoteExport.Phase.KICKOFF, "Kick-off"),
    (RemoteExport.Phase.WAITING, "Waiting"),
    (RemoteExport.Phase.DOWNLOAD, "Download"),
    (RemoteExport.Phase.DELETE, "Delete"),
]
EXCHANGES_SHOWN = 200  # the latest; hours of polling must not make the page huge
KEY_HEADERS = ("content-location", "x-progress", "retry-after", "expires", "content-type")


def remote_panel(job: ExportJob) -> JobPanel | None:
    export = RemoteExport.objects.select_related("server").filter(job=job).first()
    if export is None:
        return None
    exchanges = [
        {
            "exchange": exchange,
            "headers": {
                name: value
                for name, value in {
                    **exchange.request_headers,
                    **exchange.response_headers,
                }.items()
                if name.lower() in (*KEY_HEADERS, "authorization")
            },
        }
        for exchange in reversed(export.exchanges.order_by("-pk")[:EXCHANGES_SHOWN])
    ]
    downloads = list(export.downloads.select_related("file__job"))
    pairs = dict(tuple(pair) for pair in export.kickoff_pairs)
    context = {
        "export": export,
        "bulk_data": bulk_data_label(
            export.bulk_version,
            pairs.get("organizeOutputBy", ""),
            pairs.get("allowPartialManifests") == "true",
        ),
        "downloads": downloads,
        "timings": [(label, export.timings.get(phase)) for phase, label in PHASES],
        "manifest_json": json.dumps(export.manifest, indent=2) if export.manifest else "",
        "exchanges": exchanges,
        "exchanges_total": export.exchanges.count(),
    }
    return JobPanel(
        template="remotes/partials/job_remote.html",
        live_template="remotes/partials/job_remote_live.html",
        context=context,
        can_rerun=False,
        # The issues shown are the error files' lines, raw.
        files_shown=tuple(
            d.file for d in downloads if d.kind == ExportFile.Kind.ERROR and d.file is not None
        )
        if export.outcomes
        else (),
    )


def remote_job_labels(jobs: list[ExportJob]) -> dict[int, str]:
    """ "from <server>" for the jobs that pull from a remote server, in one query."""
    pulls = RemoteExport.objects.filter(job__in=[job.pk for job in jobs if job.client_id is None])
    return {job_id: f"from {name}" for job_id, name in pulls.values_list("job_id", "server__name")}


def remote_sources() -> list[LaunchSource]:
    return [
        LaunchSource(f"Remote server {name}", reverse("remotes:remote-launch", args=[name]))
        for name in RemoteServer.objects.values_list("name", flat=True)
    ]
