"""Strict readers for settings that come from the environment.

Every setting has an embedded default so a fresh machine runs with nothing installed;
production overrides by environment only. Helpers reject values they cannot parse
instead of guessing, so a typo in a deployment fails at start-up, not at 3 a.m.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from functools import cache
from pathlib import Path
from zoneinfo import available_timezones

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    """NAME's value; unset or empty means the default (so `NAME=` resets it)."""
    return os.environ.get(name) or default


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return parse_bool(name, raw)


def parse_bool(name: str, raw: str) -> bool:
    """true/false, 1/0, yes/no, on/off (any case); anything else stops start-up."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


# In the zone database but not places: the machine's own setting, a link file, a
# placeholder zone that prints "-00".
NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@cache
def time_zone_names() -> frozenset[str]:
    """The IANA time zone names this machine knows (tzdata), e.g. `Europe/Berlin`."""
    return frozenset(available_timezones() - NOT_ZONES)


def env_time_zone(name: str, default: str) -> str:
    value = env_str(name, default)
    if value not in time_zone_names():
        raise ImproperlyConfigured(
            f"{name} must be an IANA time zone name such as Europe/Berlin, not {value!r}"
        )
    return value


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def env_networks(name: str, default: str) -> tuple[IPNetwork, ...]:
    """Comma-separated addresses or networks (`10.0.0.5`, `10.0.0.0/8`, `::1`)."""
    networks = []
    for item in env_str(name, default).split(","):
        try:
            networks.append(ipaddress.ip_network(item.strip()))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must list IP addresses or networks, not {item.strip()!r}"
            ) from None
    return tuple(networks)


def env_secret(name: str, default: str | None = None) -> str | None:
    """Read NAME, or the contents of the file named by NAME_FILE (Docker/K8s secrets)."""
    if name in os.environ:
        return os.environ[name]
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return default


def persistent_secret(path: Path) -> str:
    """Return the secret stored at `path`, creating it (mode 0600) on first use.

    Lets a fresh install keep sessions valid across restarts without asking the
    operator to invent a SECRET_KEY.
    """
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(50)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value
