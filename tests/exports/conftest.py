from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

DATA = Path(__file__).parents[1] / "data"


class Run:
    def __init__(self, stdout: str, stderr: str, failed: bool) -> None:
        self.stdout, self.stderr, self.failed = stdout, stderr, failed


@pytest.fixture
def load_fhir() -> Callable[..., Run]:
    """Run `manage.py load_fhir` on paths; returns its output and whether it failed."""

    def run(*paths: Path | str) -> Run:
        out, err = StringIO(), StringIO()
        try:
            call_command("load_fhir", *map(str, paths), stdout=out, stderr=err)
        except CommandError as error:
            err.write(str(error))
            return Run(out.getvalue(), err.getvalue(), True)
        return Run(out.getvalue(), err.getvalue(), False)

    return run
