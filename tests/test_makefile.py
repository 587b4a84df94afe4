"""`make run` and `make test` make their venv with the newest Python 3.11+ on PATH, or
with PYTHON, and stop with one sentence before making anything when there is none.

The interpreters here are shell scripts standing in for Pythons: each answers the
version question scripts/find-python asks and logs every other call. PATH holds only
them, as on a machine whose python3 is all there is.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make")

pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def fake_python(directory: Path, name: str, version: str | None) -> Path:
    """A `python` that reports `version` (or fails as a pyenv shim does for a version
    pyenv has not selected: exit 127), makes a venv whose python is itself, and logs
    what it was asked to do next to itself."""
    directory.mkdir(exist_ok=True)
    path = directory / name
    log = directory / f"{name}.log"
    answer = f"echo {version}" if version else "exit 127"
    path.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = -c ] && {{ {answer}; exit; }}\n'
        f'echo "$*" >> {log}\n'
        'if [ "$1 $2" = "-m venv" ]; then\n'
        '  /bin/mkdir -p "$3/bin" && /bin/cp "$0" "$3/bin/python"\n'
        "fi\n"
    )
    path.chmod(0o755)
    return path


def make(target: str, path: Path, *variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MAKE, "--no-print-directory", "-C", str(ROOT), target, *variables],
        env={"PATH": str(path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def calls(python: Path) -> list[str]:
    log = python.with_name(f"{python.name}.log")
    return log.read_text().splitlines() if log.exists() else []


def test_only_python_3_10_on_path_stops_make_with_one_sentence_before_any_venv(tmp_path):
    bin_dir = tmp_path / "bin"
    python3 = fake_python(bin_dir, "python3", "3.10")
    venv = tmp_path / "venv"

    result = make("install", bin_dir, f"VENV={venv}")

    assert result.returncode != 0
    assert (
        "bulkops needs Python 3.11 or newer, but python3 is 3.10: install python3.13, "
        "python3.12 or python3.11 (with its venv module), or name one with "
        "make PYTHON=/path/to/python3.X.\n"
    ) in result.stderr
    assert not venv.exists()
    assert calls(python3) == []


def test_no_python_at_all_is_named_in_the_sentence(tmp_path):
    venv = tmp_path / "venv"

    result = make("install", tmp_path, f"VENV={venv}")

    assert "bulkops needs Python 3.11 or newer, but there is no python3 on PATH:" in result.stderr
    assert not venv.exists()


def test_the_newest_python_that_runs_makes_the_venv(tmp_path):
    bin_dir = tmp_path / "bin"
    shim = fake_python(bin_dir, "python3.13", None)
    newest = fake_python(bin_dir, "python3.12", "3.12")
    older = fake_python(bin_dir, "python3.11", "3.11")
    venv = tmp_path / "venv"

    result = make(f"{venv}/bin/python", bin_dir, f"VENV={venv}")

    assert result.returncode == 0, result.stderr
    assert f"{newest} -m venv {venv}" in result.stdout
    assert calls(newest)[0] == f"-m venv {venv}"
    assert calls(shim) == calls(older) == []


def test_python_overrides_what_path_offers(tmp_path):
    bin_dir = tmp_path / "bin"
    python3 = fake_python(bin_dir, "python3", "3.13")
    chosen = fake_python(tmp_path / "elsewhere", "python", "3.11")
    venv = tmp_path / "venv"

    result = make(f"{venv}/bin/python", bin_dir, f"VENV={venv}", f"PYTHON={chosen}")

    assert result.returncode == 0, result.stderr
    assert calls(chosen)[0] == f"-m venv {venv}"
    assert calls(python3) == []


def test_a_python_named_by_python_that_is_too_old_is_refused(tmp_path):
    bin_dir = tmp_path / "bin"
    fake_python(bin_dir, "python3", "3.13")
    old = fake_python(tmp_path / "elsewhere", "python", "3.10")
    venv = tmp_path / "venv"

    result = make("install", bin_dir, f"VENV={venv}", f"PYTHON={old}")

    assert f"bulkops needs Python 3.11 or newer, but {old} is 3.10:" in result.stderr
    assert not venv.exists()
