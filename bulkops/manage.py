"""Django's manage.py for bulkops: the checkout's manage.py calls it, and an installed
bulkops runs it as `bulkops-admin` from any directory (pyproject.toml)."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bulkops.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
