"""The first steps `make run` shows: the console's address, the demo login (a password
shown once) and how to run a first export.

`seed_demo --later` keeps them in a file only the owner may read; `first_steps`, the last
process `make run` starts, prints them in a box once the web app answers and a worker
is ready (after those processes' own banners, where they are not lost), then removes
the file, so the password is printed once.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings


def steps_file() -> Path:
    return settings.VAR_DIR / "first-steps.txt"


def keep(lines: list[str]) -> Path:
    """Write the steps for `first_steps`, readable by their owner only."""
    path = steps_file()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write("\n".join(lines) + "\n")
    return path


def kept_at() -> float | None:
    """When the steps were kept (None: there are none): a worker ready since then is
    one of this run's."""
    try:
        return steps_file().stat().st_mtime
    except FileNotFoundError:
        return None


def take() -> list[str]:
    """The kept steps, removed from disk; [] when there are none."""
    path = steps_file()
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    path.unlink(missing_ok=True)
    return lines


def boxed(lines: list[str], title: str = "bulkops is ready") -> str:
    """`lines` between two rules, so they stand out among the processes' log lines. No
    side borders: the commands inside copy and paste as they are."""
    width = min(max((len(line) for line in lines), default=0) + 4, 88)
    top = f"+{f' {title} '.center(width - 2, '-')}+"
    return "\n".join(
        [top, *(f"  {line}".rstrip() for line in lines), "+" + "-" * (width - 2) + "+"]
    )
