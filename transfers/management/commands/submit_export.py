"""`manage.py submit_export JOB NAME`: the console's "send an export", from a shell.

It records the same delivery (visible in the console) and sends it in this process
instead of a worker; the receiver fetches the files from this bulkops' web server, at
BULKOPS_BASE_URL (or --base-url). It prints what the receiver reported per file.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from exports.models import ExportJob
from remotes.models import RemoteServer
from transfers.delivery_runner import send_delivery
from transfers.models import Delivery
from transfers.services import DeliveryRefused, deliver


class Command(BaseCommand):
    help = "Send a completed export to a remote server's $bulk-submit; non-zero exit on failure."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job", help="The export's id (its uuid, as the console shows it).")
        parser.add_argument("name", help="The remote server's name (see /remotes/).")
        parser.add_argument(
            "--base-url",
            default=settings.BULKOPS_BASE_URL,
            help="This server's URL as the receiver reaches it (default: BULKOPS_BASE_URL).",
        )
        parser.add_argument(
            "--hold-open",
            action="store_true",
            help="Send the manifest in-progress; complete or stop it later in the console.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        job = ExportJob.objects.filter(uuid=_uuid(options["job"])).first()
        server = RemoteServer.objects.filter(name=options["name"]).first()
        if job is None:
            raise CommandError(f"No export {options['job']!r}.")
        if server is None:
            raise CommandError(f"No remote server named {options['name']!r}.")
        if not job.is_finished:
            raise CommandError(f"Export {job.uuid} is still {job.status}.")
        try:
            delivery = deliver(
                job, server, base_url=options["base_url"], actor="command", request=None,
                hold_open=options["hold_open"], queue=False,
            )  # fmt: skip
        except DeliveryRefused as refused:
            raise CommandError(str(refused)) from None
        self.stdout.write(f"Delivery {delivery.uuid}: submissionId {delivery.submission_id}")
        send_delivery(delivery.pk)
        delivery.refresh_from_db()
        if delivery.status == Delivery.Status.FAILED:
            raise CommandError(delivery.error)
        for outcome in delivery.outcomes:
            self.stdout.write(f"  {outcome['severity']:<12} {outcome['plain']}")
        self.stdout.write(self.style.SUCCESS(f"Delivery {delivery.status}."))


def _uuid(text: str) -> str | None:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None
