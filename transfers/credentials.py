"""The credential a receiver presents to fetch a delivery's manifest and files.

A random 256-bit value, made when the manifest is sent and handed to the receiver only
as a `fileRequestHeader` (`Authorization: Bearer …`; spec digest §3.2), never in a URL:
URLs end up in logs and audit trails (ours and the receiver's record manifest URLs),
header values do not. Only its SHA-256 is stored; clearing it withdraws access.
"""

from __future__ import annotations

import hashlib
import secrets

from django.utils.crypto import constant_time_compare

HEADER = "Authorization"
SCHEME = "Bearer "


def new_secret() -> tuple[str, str]:
    """(secret, its hash to store)."""
    secret = secrets.token_urlsafe(32)
    return secret, digest(secret)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def file_headers(secret: str) -> tuple[tuple[str, str], ...]:
    return ((HEADER, f"{SCHEME}{secret}"),)


def matches(header_value: str, stored_hash: str) -> bool:
    """Whether an Authorization header value carries the secret `stored_hash` was made
    from; never when nothing is stored (the access was withdrawn)."""
    if not stored_hash or not header_value.startswith(SCHEME):
        return False
    return constant_time_compare(digest(header_value[len(SCHEME) :].strip()), stored_hash)
