"""What every host of a multi-host installation must share, and the start-up check that
refuses a host which would otherwise keep it to itself.

The defaults run on one machine with nothing installed: a SQLite file, the filesystem
broker, export files and a generated SECRET_KEY under the host's own BULKOPS_VAR_DIR.
On several hosts each of those silently splits the installation: tasks queued on one
host are never seen by another's workers, files a worker writes are missing on the web
hosts, and sessions signed (or secrets encrypted) on one host cannot be read on another.
A host whose database or broker lives on another machine is taken to be one of several,
and every process it starts (gunicorn, a Celery worker, beat, `manage.py` commands) stops
with a message naming each setting it must be given. docs/deployment.md lists them.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

# Brokers that keep their queue inside this host (kombu's filesystem and memory
# transports): no worker elsewhere ever sees a task queued here.
LOCAL_BROKERS = ("filesystem://", "memory://")


def is_loopback(host: str | None) -> bool:
    """True for a host name that can only mean this machine: none (a Unix socket or a
    transport without a network), a socket path, `localhost` or a loopback address."""
    if not host or host.startswith("/") or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def multi_host_reason(database: dict[str, Any], broker_url: str) -> str | None:
    """Why this host is one of several (the database or the broker is on another
    machine), or None when everything it talks to is on this one."""
    if database["ENGINE"] != "django.db.backends.sqlite3" and not is_loopback(database.get("HOST")):
        return f"DATABASE_URL names a database on {database['HOST']}"
    broker_host = urllib.parse.urlsplit(broker_url).hostname
    if not is_loopback(broker_host):
        return f"CELERY_BROKER_URL names a broker on {broker_host}"
    return None


def unshared_settings() -> list[tuple[str, str]]:
    """(check id, message) for each setting this host keeps to itself though it is one
    of several; empty on a single host, or when every shared setting is given."""
    reason = multi_host_reason(settings.DATABASES["default"], settings.CELERY_BROKER_URL)
    if reason is None:
        return []
    var_dir = Path(settings.VAR_DIR)
    problems: list[tuple[str, str]] = []
    if settings.BULKOPS_SECRET_KEY_GENERATED:
        problems.append(
            (
                "E101",
                "SECRET_KEY is not set, so this host uses its own generated "
                f"{var_dir / 'secret_key'}: sessions signed by another web host would be refused "
                "here, and remote servers' private keys encrypted on another host could not be "
                "read. Set SECRET_KEY (or SECRET_KEY_FILE) to the same value on every host.",
            )
        )
    if settings.CELERY_BROKER_URL.startswith(LOCAL_BROKERS):
        problems.append(
            (
                "E102",
                f"CELERY_BROKER_URL is {settings.CELERY_BROKER_URL}, a queue inside this host: "
                "workers on other hosts would never see its tasks. Set it to the shared Redis "
                "or RabbitMQ (redis://… or amqp://…) on every host.",
            )
        )
    storage_dir = Path(settings.BULKOPS_LOCAL_STORAGE_DIR)
    if settings.BULKOPS_STORAGE == "local" and storage_dir.is_relative_to(var_dir):
        problems.append(
            (
                "E103",
                f"BULKOPS_STORAGE is local and keeps export files in {storage_dir}, on this "
                "host only: files a worker writes would be missing on the web hosts. Set "
                "BULKOPS_STORAGE=s3 (with its bucket), or BULKOPS_LOCAL_STORAGE_DIR to a "
                "directory every host mounts.",
            )
        )
    return [
        (code, f"{text} (bulkops runs on several hosts here: {reason}.)") for code, text in problems
    ]


@checks.register(checks.Tags.compatibility)
def check_shared_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.Error]:
    """The same as a Django system check, so `manage.py migrate` and `check` stop too."""
    return [checks.Error(text, id=f"bulkops.{code}") for code, text in unshared_settings()]


def refuse_unshared_settings() -> None:
    """Stop a starting process (gunicorn's app, a Celery worker or beat) that would keep
    a shared setting to itself; the message names every such setting."""
    if problems := unshared_settings():
        raise ImproperlyConfigured("\n".join(text for _, text in problems))
