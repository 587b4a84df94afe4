"""BULKOPS_CACHE_URL: Django's cache as one URL, like DATABASE_URL.

Unset, each process caches in its own memory, which is all one process needs. The
operator API's throttles count in the cache, so with several web processes (and more so
on several hosts) each would allow the whole rate; a Redis that they all share makes
the rate the installation's.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from django.core.exceptions import ImproperlyConfigured

LOCAL = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
SCHEMES = ("redis", "rediss")


def cache_from_url(url: str) -> dict[str, Any]:
    """A CACHES entry: process memory for "", Django's Redis cache for redis:// or
    rediss:// (`redis://[:password@]host:port/db`). The password moves to OPTIONS, out
    of the URL, so a debug page never shows it."""
    if not url:
        return LOCAL
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ImproperlyConfigured(
            "BULKOPS_CACHE_URL must be a redis:// or rediss:// URL with a host, "
            f"not one starting {parts.scheme or url[:10]!r}"
        )
    options: dict[str, Any] = {}
    if parts.password is not None:
        options["password"] = urllib.parse.unquote(parts.password)
    if parts.username:
        options["username"] = urllib.parse.unquote(parts.username)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = f"{host}:{parts.port}" if parts.port else host
    return {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")),
        "OPTIONS": options,
    }
