"""Every variable README.md documents takes effect, and settings.py sets each name once.

The variables are read from README's tables (rows of `BULKOPS_*`, `DATABASE_URL`,
`CELERY_*`, `SECRET_KEY*`), so a row without a check below fails
`test_every_documented_variable_has_a_check`. A check sets its variable (and what it
needs beside it) to a value that is not the default and asserts what that changed; it
also fails when the value is already there without the variable, so it proves the
variable rather than a default. BULKOPS_MAX_BODY_BYTES had no effect for this reason:
settings.py read it, then set DATA_UPLOAD_MAX_MEMORY_SIZE again to a constant.

Most checks run the real settings module afresh in this process with the variable set;
the few whose effect appears only once Django and Celery are set up (logging, the
Celery app, DRF's throttles) run in a `manage.py shell` of the real settings instead.
"""

from __future__ import annotations

import ast
import json
import os
import re
import runpy
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from ipaddress import ip_network
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.layout import project_packages
from tests.processes import ROOT, manage, process_env

SETTINGS = ROOT / "bulkops" / "settings.py"
DOCUMENTED = re.compile(r"`((?:BULKOPS_|CELERY_|SECRET_KEY)\w*|DATABASE_URL)`")


def documented_variables() -> set[str]:
    """Every variable named in the first column of a README table."""
    names = set()
    for line in (ROOT / "README.md").read_text().splitlines():
        cells = line.split("|")
        if line.startswith("| `") and len(cells) > 2:
            names.update(DOCUMENTED.findall(cells[1]))
    return names


@dataclass(frozen=True)
class Check:
    """`value` of the variable, what it needs beside it (`env`, files under the test's
    tmp dir), and `expected`: what `read(settings)` gives then. "{tmp}" in a value or in
    a text `expected` is the test's tmp dir."""

    value: str
    read: Callable[[Any], Any]
    expected: Any
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def db(s: Any) -> dict[str, Any]:
    return s.DATABASES["default"]


# Variables whose effect settings.py computes: checked on the module's namespace.
SETTINGS_CHECKS: dict[str, Check] = {
    "BULKOPS_VAR_DIR": Check("{tmp}/state", lambda s: db(s)["NAME"], "{tmp}/state/bulkops.sqlite3"),
    "DATABASE_URL": Check(
        "postgres://u:p@db.example:5432/bulk",
        lambda s: (db(s)["ENGINE"], db(s)["NAME"], db(s)["HOST"]),
        ("django.db.backends.postgresql", "bulk", "db.example"),
    ),
    "SECRET_KEY": Check("from-the-environment", lambda s: s.SECRET_KEY, "from-the-environment"),
    "SECRET_KEY_FILE": Check(
        "{tmp}/key.txt", lambda s: s.SECRET_KEY, "from-a-file", files={"key.txt": "from-a-file\n"}
    ),
    "BULKOPS_DEBUG": Check("true", lambda s: s.DEBUG, True),
    "BULKOPS_ALLOWED_HOSTS": Check(
        "bulk.example.org", lambda s: s.ALLOWED_HOSTS, ["bulk.example.org"]
    ),
    "BULKOPS_CSRF_TRUSTED_ORIGINS": Check(
        "https://a.example,https://b.example",
        lambda s: s.CSRF_TRUSTED_ORIGINS,
        ["https://a.example", "https://b.example"],
    ),
    "BULKOPS_TLS": Check(
        "true",
        lambda s: (s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT),
        (True, True, True),
    ),
    "BULKOPS_HSTS_SECONDS": Check(
        "60", lambda s: s.SECURE_HSTS_SECONDS, 60, env={"BULKOPS_TLS": "true"}
    ),
    "BULKOPS_BEHIND_TLS_PROXY": Check(
        "true",
        lambda s: (
            getattr(s, "SECURE_PROXY_SSL_HEADER", None),
            s.BULKOPS_TRUSTED_PROXIES,
            s.SECURE_SSL_REDIRECT,
        ),
        (("HTTP_X_FORWARDED_PROTO", "https"), (ip_network("127.0.0.1"), ip_network("::1")), True),
    ),
    "BULKOPS_TRUSTED_PROXIES": Check(
        "10.0.0.0/8,fd00::1",
        lambda s: s.BULKOPS_TRUSTED_PROXIES,
        (ip_network("10.0.0.0/8"), ip_network("fd00::1")),
        env={"BULKOPS_BEHIND_TLS_PROXY": "true"},
    ),
    "BULKOPS_MAX_BODY_BYTES": Check("5000", lambda s: s.DATA_UPLOAD_MAX_MEMORY_SIZE, 5000),
    "BULKOPS_BASE_URL": Check(
        "https://bulk.example.org/", lambda s: s.BULKOPS_BASE_URL, "https://bulk.example.org"
    ),
    "BULKOPS_STORAGE": Check(
        "s3", lambda s: s.BULKOPS_STORAGE, "s3", env={"BULKOPS_S3_BUCKET": "exports"}
    ),
    "BULKOPS_LOCAL_STORAGE_DIR": Check(
        "{tmp}/files", lambda s: str(s.BULKOPS_LOCAL_STORAGE_DIR), "{tmp}/files"
    ),
    "BULKOPS_DB_CONN_MAX_AGE": Check("0", lambda s: db(s)["CONN_MAX_AGE"], 0),
    "BULKOPS_ACCESS_TOKEN_LIFETIME": Check("120", lambda s: s.BULKOPS_ACCESS_TOKEN_LIFETIME, 120),
    "BULKOPS_ALLOW_HTTP_JWKS": Check("true", lambda s: s.BULKOPS_ALLOW_HTTP_JWKS, True),
    "BULKOPS_ALLOW_PRIVATE_FETCH": Check("true", lambda s: s.BULKOPS_ALLOW_PRIVATE_FETCH, True),
    "BULKOPS_CLIENT_KEY_MAX_AGE_DAYS": Check("0", lambda s: s.BULKOPS_CLIENT_KEY_MAX_AGE_DAYS, 0),
    "BULKOPS_KEY_EXPIRY_WARNING_DAYS": Check("7", lambda s: s.BULKOPS_KEY_EXPIRY_WARNING_DAYS, 7),
    "BULKOPS_MAX_UPLOAD_BYTES": Check("1000", lambda s: s.BULKOPS_MAX_UPLOAD_BYTES, 1000),
    "BULKOPS_PREVIEW_SEARCH_BYTES": Check("4096", lambda s: s.BULKOPS_PREVIEW_SEARCH_BYTES, 4096),
    "BULKOPS_PREVIEW_SEARCH_MS": Check("250", lambda s: s.BULKOPS_PREVIEW_SEARCH_MS, 250),
    "BULKOPS_ENCRYPTION_KEYS": Check("k1,k2", lambda s: s.BULKOPS_ENCRYPTION_KEYS, ["k1", "k2"]),
    "BULKOPS_CACHE_URL": Check(
        "redis://:pw@cache.internal:6380/2",
        lambda s: s.CACHES["default"],
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://cache.internal:6380/2",
            "OPTIONS": {"password": "pw"},
        },
    ),
    "BULKOPS_PARTITION_LEASE": Check("30", lambda s: s.BULKOPS_PARTITION_LEASE, 30),
    "BULKOPS_PARTITION_MAX_ATTEMPTS": Check("5", lambda s: s.BULKOPS_PARTITION_MAX_ATTEMPTS, 5),
    "BULKOPS_CHECK_TIMEOUT": Check("120", lambda s: s.BULKOPS_CHECK_TIMEOUT, 120),
    "BULKOPS_REMOTE_MAX_WAIT": Check("30", lambda s: s.BULKOPS_REMOTE_MAX_WAIT, 30),
    "BULKOPS_SUBMIT_FETCH_TIMEOUT": Check("5", lambda s: s.BULKOPS_SUBMIT_FETCH_TIMEOUT, 5),
    "BULKOPS_SUBMIT_FILE_DEADLINE": Check("60", lambda s: s.BULKOPS_SUBMIT_FILE_DEADLINE, 60),
    "BULKOPS_REMOTE_TRANSIENT_RETRIES": Check("0", lambda s: s.BULKOPS_REMOTE_TRANSIENT_RETRIES, 0),
    "BULKOPS_MAX_CONCURRENT_EXPORTS": Check("9", lambda s: s.BULKOPS_MAX_CONCURRENT_EXPORTS, 9),
    "BULKOPS_MAX_RESOURCES_PER_FILE": Check("10", lambda s: s.BULKOPS_MAX_RESOURCES_PER_FILE, 10),
    "BULKOPS_PARTITION_SIZE": Check("10", lambda s: s.BULKOPS_PARTITION_SIZE, 10),
    "BULKOPS_EXPORT_WORKERS": Check("4", lambda s: s.BULKOPS_EXPORT_WORKERS, 4),
    "BULKOPS_SINCE_CLOCK_SKEW": Check("5", lambda s: s.BULKOPS_SINCE_CLOCK_SKEW, 5),
    "BULKOPS_EXPORT_RETENTION": Check("600", lambda s: s.BULKOPS_EXPORT_RETENTION, 600),
    "BULKOPS_RETRY_AFTER": Check("7", lambda s: s.BULKOPS_RETRY_AFTER, 7),
    "BULKOPS_POLL_BURST": Check("3", lambda s: s.BULKOPS_POLL_BURST, 3),
    "BULKOPS_S3_BUCKET": Check("exports", lambda s: s.BULKOPS_S3_BUCKET, "exports"),
    "BULKOPS_S3_ENDPOINT_URL": Check(
        "http://minio:9000", lambda s: s.BULKOPS_S3_ENDPOINT_URL, "http://minio:9000"
    ),
    "BULKOPS_S3_REGION": Check("eu-central-1", lambda s: s.BULKOPS_S3_REGION, "eu-central-1"),
    "BULKOPS_S3_PREFIX": Check("bulkops/prod", lambda s: s.BULKOPS_S3_PREFIX, "bulkops/prod"),
    "BULKOPS_S3_PRESIGN_SECONDS": Check("60", lambda s: s.BULKOPS_S3_PRESIGN_SECONDS, 60),
    "BULKOPS_S3_PART_MB": Check("5", lambda s: s.BULKOPS_S3_PART_SIZE, 5 * 1024 * 1024),
    "BULKOPS_S3_ADDRESSING_STYLE": Check("path", lambda s: s.BULKOPS_S3_ADDRESSING_STYLE, "path"),
    "BULKOPS_S3_SSE": Check("AES256", lambda s: s.BULKOPS_S3_SSE, "AES256"),
    "BULKOPS_OUTPUT_STORAGES": Check(
        '{{"scratch": {{"kind": "local", "dir": "/srv/scratch"}}}}',  # braces doubled: .format
        lambda s: {name: storage.dir for name, storage in s.BULKOPS_OUTPUT_STORAGES.items()},
        {"scratch": "/srv/scratch"},
    ),
    "BULKOPS_OUTBOUND_PROXY": Check(
        "http://proxy.example:3128",
        lambda s: s.BULKOPS_OUTBOUND_PROXY,
        "http://proxy.example:3128",
    ),
    "BULKOPS_TOKEN_MAX_FAILURES_PER_CLIENT": Check(
        "4", lambda s: s.BULKOPS_TOKEN_MAX_FAILURES_PER_CLIENT, 4
    ),
    "BULKOPS_TOKEN_MAX_FAILURES_PER_ADDRESS": Check(
        "6", lambda s: s.BULKOPS_TOKEN_MAX_FAILURES_PER_ADDRESS, 6
    ),
    "BULKOPS_TOKEN_FAILURE_WINDOW": Check("90", lambda s: s.BULKOPS_TOKEN_FAILURE_WINDOW, 90),
    "BULKOPS_LOGIN_MAX_FAILURES": Check("9", lambda s: s.AXES_FAILURE_LIMIT, 9),
    "BULKOPS_TIME_ZONE": Check("Asia/Kolkata", lambda s: s.TIME_ZONE, "Asia/Kolkata"),
    "BULKOPS_LOGIN_COOLOFF_MINUTES": Check(
        "30", lambda s: s.AXES_COOLOFF_TIME, timedelta(minutes=30)
    ),
    "BULKOPS_EMAIL_URL": Check(
        "smtp://mail.example:2525",
        lambda s: (s.EMAIL_HOST, s.EMAIL_PORT, s.BULKOPS_PASSWORD_RESET_BY_EMAIL),
        ("mail.example", 2525, True),
    ),
    "BULKOPS_EMAIL_URL_FILE": Check(
        "{tmp}/email",
        lambda s: s.EMAIL_HOST,
        "mail.example",
        files={"email": "smtp://mail.example\n"},
    ),
    "BULKOPS_EMAIL_FROM": Check(
        "ops@example.org", lambda s: s.DEFAULT_FROM_EMAIL, "ops@example.org"
    ),
    "BULKOPS_NOTIFY_WEBHOOK_URL": Check(
        "https://hooks.example.org/bulkops",
        lambda s: s.BULKOPS_NOTIFY_WEBHOOK_URL,
        "https://hooks.example.org/bulkops",
        env={"BULKOPS_NOTIFY_WEBHOOK_SECRET": "k"},
    ),
    "BULKOPS_NOTIFY_WEBHOOK_SECRET": Check(
        "shared-secret", lambda s: s.BULKOPS_NOTIFY_WEBHOOK_SECRET, "shared-secret"
    ),
    "BULKOPS_NOTIFY_EMAIL": Check(
        "ops@example.org,oncall@example.org",
        lambda s: s.BULKOPS_NOTIFY_EMAIL,
        ["ops@example.org", "oncall@example.org"],
    ),
    "BULKOPS_NOTIFY_RETRIES": Check("2", lambda s: s.BULKOPS_NOTIFY_RETRIES, 2),
    "BULKOPS_NOTIFY_RETRY_DELAY": Check("5", lambda s: s.BULKOPS_NOTIFY_RETRY_DELAY, 5),
}

# Variables whose effect shows only in a set-up process: value and what PROCESS_PROBE
# reports for it then.
PROCESS_CHECKS: dict[str, tuple[str, Any]] = {
    "BULKOPS_LOG_LEVEL": ("debug", "DEBUG"),
    "BULKOPS_LOG_FORMAT": ("json", "JsonFormatter"),
    "CELERY_BROKER_URL": ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    "CELERY_RESULT_BACKEND": ("redis://127.0.0.1:6379/1", "redis://127.0.0.1:6379/1"),
    "BULKOPS_REAPER_INTERVAL": ("15", 15.0),
    "BULKOPS_API_THROTTLE_USER": ("5/second", "5/second"),
    "BULKOPS_API_THROTTLE_ANON": ("7/hour", "7/hour"),
}
PROCESS_PROBE = """
import json, logging
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle
from bulkops.celery import app
root = logging.getLogger()
print(json.dumps({
    "BULKOPS_LOG_LEVEL": logging.getLevelName(root.level),
    "BULKOPS_LOG_FORMAT": type(root.handlers[0].formatter).__name__,
    "CELERY_BROKER_URL": app.conf.broker_url,
    "CELERY_RESULT_BACKEND": app.conf.result_backend,
    "BULKOPS_REAPER_INTERVAL": app.conf.beat_schedule["reap-stalled-exports"]["schedule"],
    "BULKOPS_API_THROTTLE_USER": UserRateThrottle().rate,
    "BULKOPS_API_THROTTLE_ANON": AnonRateThrottle().rate,
}))
"""


def test_every_documented_variable_has_a_check() -> None:
    documented = documented_variables()
    assert len(documented) > 40  # the tables were found
    checked = set(SETTINGS_CHECKS) | set(PROCESS_CHECKS)
    assert sorted(documented - checked) == [], "documented in README.md but never checked"
    assert sorted(checked - documented) == [], "checked but missing from README.md"


def settings_with(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """bulkops/settings.py run afresh with `env` and nothing else of ours set."""
    for name in list(os.environ):
        if DOCUMENTED.fullmatch(f"`{name}`"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return SimpleNamespace(**runpy.run_path(str(SETTINGS)))


@pytest.mark.parametrize("variable", sorted(SETTINGS_CHECKS))
def test_documented_variable_takes_effect(variable, tmp_path, monkeypatch) -> None:
    check = SETTINGS_CHECKS[variable]
    for name, text in check.files.items():
        (tmp_path / name).write_text(text)

    def filled(value: Any) -> Any:
        return value.format(tmp=tmp_path) if isinstance(value, str) else value

    env = {"BULKOPS_VAR_DIR": str(tmp_path / "var"), **check.env}
    expected = filled(check.expected)
    assert check.read(settings_with(env, monkeypatch)) != expected, "already so without it"
    assert (
        check.read(settings_with({**env, variable: filled(check.value)}, monkeypatch)) == expected
    )


def probe_process(var_dir: Path, **env: str) -> dict[str, Any]:
    result = manage(process_env(var_dir, **env), "shell", "--no-imports", "-c", PROCESS_PROBE)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_documented_variables_reach_logging_celery_and_the_api(tmp_path) -> None:
    """All at once: each changes a different thing, so none can stand in for another."""
    defaults = probe_process(tmp_path)
    changed = probe_process(
        tmp_path, **{name: value for name, (value, _) in PROCESS_CHECKS.items()}
    )
    for name, (_, expected) in PROCESS_CHECKS.items():
        assert defaults[name] != expected, name
        assert changed[name] == expected, name


def assigned_names(statements: list[ast.stmt]) -> Counter[str]:
    """How often each module-level name is bound (`X = ...`, not `X["key"] = ...`).
    The branches of an `if` are alternatives: a name set in both counts once."""
    counts: Counter[str] = Counter()
    for statement in statements:
        if isinstance(statement, ast.If):
            counts += assigned_names(statement.body) | assigned_names(statement.orelse)
        elif isinstance(statement, ast.Assign):
            counts.update(name for target in statement.targets for name in bound(target))
        elif isinstance(statement, ast.AnnAssign | ast.AugAssign | ast.For):
            counts.update(bound(statement.target))
    return counts


def bound(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple | ast.List):
        return [name for item in target.elts for name in bound(item)]
    return []  # an item or attribute of something already bound


def test_settings_assign_every_name_once() -> None:
    """A second assignment silently wins over the first, as DATA_UPLOAD_MAX_MEMORY_SIZE
    = 2_621_440 did over BULKOPS_MAX_BODY_BYTES."""
    counts = assigned_names(ast.parse(SETTINGS.read_text()).body)
    assert {name for name, count in counts.items() if count > 1} == set()
    assert counts["DATA_UPLOAD_MAX_MEMORY_SIZE"] == 1


def test_every_bulkops_setting_is_read() -> None:
    """A BULKOPS_* setting nothing reads is a documented knob with no effect."""
    tree = ast.parse(SETTINGS.read_text())
    ours = {name for name in assigned_names(tree.body) if name.startswith("BULKOPS_")}
    read_in_settings = {
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    }
    code = "\n".join(
        path.read_text()
        for folder in project_packages()
        for path in (ROOT / folder).rglob("*.py")
        if path != SETTINGS and "migrations" not in path.parts
    )
    unread = {name for name in ours - read_in_settings if f"settings.{name}" not in code}
    assert unread == set()
