"""Where bulkops' own code lives, for tests that walk it (settings read, packaging, layers)."""

from __future__ import annotations

from pathlib import Path

from django.apps import apps

ROOT = Path(__file__).resolve().parent.parent


def project_packages() -> tuple[str, ...]:
    """`bulkops` and every installed app at the top of this checkout (not those of a
    virtualenv inside it): a new app is walked by these tests as soon as it is in
    INSTALLED_APPS."""
    ours = [
        config.name
        for config in apps.get_app_configs()
        if Path(config.path).resolve().parent == ROOT
    ]
    return ("bulkops", *ours)
