"""Origins (RFC 6454: scheme, host and port) of the URLs bulkops sends credentials to.

An access token for a server goes only to that server's origin: a redirect to an
object store, a status URL or a manifest file elsewhere, or a token endpoint on another
host is a different origin, and so a different party.
"""

from __future__ import annotations

import urllib.parse

DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]


def origin(url: str) -> Origin | None:
    """(scheme, host, port) of an http(s) URL with the default port filled in; None
    for anything else. User info in the URL is no part of it."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        return None
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname, port or DEFAULT_PORTS[scheme]


def same_origin(url: str, other: str) -> bool:
    """Both http(s) URLs on one origin."""
    mine = origin(url)
    return mine is not None and mine == origin(other)


def origin_text(url: str) -> str:
    """The origin as a URL (`https://host:port`), for messages."""
    found = origin(url)
    if found is None:
        return url
    scheme, host, port = found
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" if port == DEFAULT_PORTS[scheme] else f"{scheme}://{shown}:{port}"
