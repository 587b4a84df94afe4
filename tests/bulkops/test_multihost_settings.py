"""A host of a multi-host installation (its database or broker on another machine)
refuses to start without the settings every host must share, naming each one: `manage.py`
commands through a system check, gunicorn, a Celery worker and beat at start-up."""

from __future__ import annotations

import subprocess

import pytest

from tests.processes import BIN, manage, process_env, run_command

# Nothing listens there: each process stops before it would connect.
REMOTE_DATABASE = "postgres://bulkops:secret@10.255.0.1:5432/bulkops"
REMOTE_BROKER = "redis://10.255.0.1:6379/0"
SHARED = {
    "SECRET_KEY": "the-same-on-every-host",
    "CELERY_BROKER_URL": REMOTE_BROKER,
    "BULKOPS_STORAGE": "s3",
    "BULKOPS_S3_BUCKET": "exports",
}
NAMED = ("SECRET_KEY", "CELERY_BROKER_URL", "BULKOPS_STORAGE")


def started(env: dict[str, str], *command: str) -> subprocess.CompletedProcess:
    return run_command(env, str(BIN / command[0]), *command[1:])


def test_manage_commands_name_every_missing_shared_setting(tmp_path):
    result = manage(process_env(tmp_path, DATABASE_URL=REMOTE_DATABASE), "check")

    assert result.returncode == 1
    for code, name in zip(("E101", "E102", "E103"), NAMED, strict=True):
        assert f"(bulkops.{code}) {name} " in result.stderr
    assert "DATABASE_URL names a database on 10.255.0.1" in result.stderr


def test_host_given_every_shared_setting_passes_the_check(tmp_path):
    env = process_env(tmp_path, DATABASE_URL=REMOTE_DATABASE, **SHARED)
    result = manage(env, "check")
    assert result.returncode == 0, result.stderr


def test_a_shared_directory_for_local_storage_is_accepted(tmp_path):
    env = process_env(
        tmp_path / "var",
        DATABASE_URL=REMOTE_DATABASE,
        SECRET_KEY="k",
        CELERY_BROKER_URL=REMOTE_BROKER,
        BULKOPS_LOCAL_STORAGE_DIR=str(tmp_path / "mounted-on-every-host"),
    )
    assert manage(env, "check").returncode == 0


@pytest.mark.parametrize(
    "database_url",
    ["postgres://bulkops:secret@127.0.0.1:5432/bulkops", "postgres://bulkops@/bulkops"],
)
def test_a_database_on_this_host_keeps_the_single_host_defaults(tmp_path, database_url):
    result = manage(process_env(tmp_path, DATABASE_URL=database_url), "check")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("celery", "-A", "bulkops", "worker", "--loglevel", "INFO"),
        ("celery", "-A", "bulkops", "beat", "--loglevel", "INFO"),
        ("gunicorn", "bulkops.wsgi", "-c", "gunicorn.conf.py", "--bind", "127.0.0.1:0"),
    ],
    ids=["worker", "beat", "gunicorn"],
)
def test_processes_refuse_to_start_without_a_shared_secret_key(tmp_path, command):
    env = process_env(tmp_path, **{**SHARED, "SECRET_KEY": ""})
    result = started(env, *command)

    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "SECRET_KEY is not set" in output
    assert "CELERY_BROKER_URL names a broker on 10.255.0.1" in output
    assert "BULKOPS_STORAGE is local" not in output
