"""The sdist and the wheel hold every module, template, static file, migration and FHIR
data file of the checkout, and a wheel installed into a new venv runs bulkops's
management commands from another directory.

Slow (about a minute: a build, a venv, an install of the dependencies from pip's cache
or PyPI); `-m packaging` selects it, `-m "not slow"` leaves it out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

from tests.processes import process_env

pytestmark = [pytest.mark.slow, pytest.mark.packaging]

ROOT = Path(__file__).resolve().parent.parent
APPS = ("accounts", "bulkops", "exports", "remotes", "schedules")
# Kept at the checkout's top, carried inside the bulkops package (pyproject.toml).
PACKAGED_DIRS = {"templates": "bulkops/templates", "static": "bulkops/static"}

# Renders the login page, in our layout when the templates are found, and fetches the
# stylesheet it links to as a browser would; prints where bulkops was imported from.
PAGE_CHECK = """
import json, re, bulkops
from django.test import Client
client = Client()
page = client.get("/accounts/login/")
link = re.search(r'href="([^"]*/bulkops[^"]*\\.css)"', page.content.decode())
print(json.dumps({
    "package": bulkops.__file__,
    "page": page.status_code,
    "stylesheet": link and client.get(link.group(1)).status_code,
}))
"""


def run(*command: str | Path, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, check=False, **kwargs
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def checkout_files() -> set[str]:
    """What bulkops reads at run time, as paths in the wheel: every file git tracks in
    the apps, templates/ and static/."""
    listed = run("git", "ls-files", *APPS, *PACKAGED_DIRS, cwd=ROOT).stdout.split()
    files = set()
    for name in listed:
        top, _, rest = name.partition("/")
        files.add(f"{PACKAGED_DIRS[top]}/{rest}" if top in PACKAGED_DIRS else name)
    return files


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("build", reason="build is in the test extra: pip install -e '.[test]'")
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, ROOT)
    return out


def test_the_wheel_holds_every_module_template_static_and_data_file(dist):
    (wheel,) = dist.glob("bulkops-*.whl")

    names = set(zipfile.ZipFile(wheel).namelist())

    assert checkout_files() <= names
    assert "bulkops/fhir/data/CompartmentDefinition-patient.json" in names
    assert "exports/migrations/0001_resource_store.py" in names


def test_the_sdist_holds_what_the_wheel_is_built_from(dist):
    (sdist,) = dist.glob("bulkops-*.tar.gz")
    top = sdist.name.removesuffix(".tar.gz")

    with tarfile.open(sdist) as archive:
        names = {name.removeprefix(f"{top}/") for name in archive.getnames()}

    tracked = run("git", "ls-files", *APPS, *PACKAGED_DIRS, cwd=ROOT).stdout.split()
    assert {*tracked, "pyproject.toml", "README.md"} <= names


def test_an_installed_wheel_migrates_checks_and_serves_pages_from_any_directory(dist, tmp_path):
    (wheel,) = dist.glob("bulkops-*.whl")
    # Nothing from the checkout: not on the path, not the working directory.
    env = {
        k: v
        for k, v in process_env(tmp_path / "var").items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(target)
    run(target / "bin" / "python", "-m", "pip", "install", "--quiet", wheel, cwd=elsewhere, env=env)
    admin = target / "bin" / "bulkops-admin"

    run(admin, "migrate", "--no-input", cwd=elsewhere, env=env)
    checked = run(admin, "check", cwd=elsewhere, env=env)
    run(admin, "collectstatic", "--no-input", cwd=elsewhere, env=env)
    page = run(admin, "shell", "--command", PAGE_CHECK, cwd=elsewhere, env=env)

    assert "System check identified no issues" in checked.stdout
    assert (tmp_path / "var" / "bulkops.sqlite3").exists()
    assert (tmp_path / "var" / "static" / "css" / "bulkops.css").exists()
    served = json.loads(page.stdout.strip().splitlines()[-1])
    assert served["page"] == 200
    assert served["stylesheet"] == 200
    assert Path(served["package"]).is_relative_to(target)
    assert not any(elsewhere.iterdir()), os.listdir(elsewhere)
