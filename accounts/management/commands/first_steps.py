"""`make run`'s last process: the first steps, boxed, after the other processes' banners."""

from __future__ import annotations

import signal
import sys
import time
import urllib.error
import urllib.request
from types import FrameType

from django.core.management.base import BaseCommand, CommandParser

from accounts.first_steps import boxed, kept_at, take
from bulkops.celery import worker_ready_file


class Command(BaseCommand):
    help = (
        "Wait until the web app answers /healthz and a Celery worker is ready, print the "
        "first steps `seed_demo --later` kept, in a box, then stay until stopped (honcho "
        "stops every process when one ends)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000")
        parser.add_argument(
            "--timeout", type=float, default=120, help="seconds to wait before printing anyway"
        )

    def handle(self, *args: object, url: str, timeout: float, **options: object) -> None:
        signal.signal(signal.SIGTERM, _leave)
        signal.signal(signal.SIGINT, _leave)
        deadline = time.monotonic() + timeout
        since = kept_at()
        while since is not None and time.monotonic() < deadline:
            if _answers(url) and _ready_since(since):
                break
            time.sleep(0.25)
        if lines := take():
            self.stdout.write(boxed(lines))
            self.stdout.flush()
        while True:
            signal.pause()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:  # noqa: S310
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _ready_since(moment: float) -> bool:
    try:
        return worker_ready_file().stat().st_mtime >= moment
    except FileNotFoundError:
        return False


def _leave(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)
