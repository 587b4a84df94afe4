"""Which client keys expire soon or have expired, for the dashboard and client pages.

Reads each client's key set (inline, or the last one fetched from its jwks_uri) and the
dates its keys were added (ClientKey), and applies accounts/key_expiry.py. Keys that
verify nothing anyway (listed as ignored) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from accounts.jwks import JwksError, validate_jwks
from accounts.key_expiry import KeyExpiry, key_expiry
from accounts.models import BackendClient, CachedJwks


@dataclass(frozen=True)
class KeyWarning:
    """One key expiring within BULKOPS_KEY_EXPIRY_WARNING_DAYS, or already expired."""

    client: BackendClient
    kid: str
    expiry: KeyExpiry
    state: str


def _key_set(client: BackendClient) -> dict[str, Any]:
    if client.jwks is not None:
        return client.jwks
    try:
        return client.cached_jwks.jwks
    except CachedJwks.DoesNotExist:
        return {}


def key_expiries(client: BackendClient) -> dict[str, KeyExpiry]:
    """Each usable key's expiry by kid; a key that never expires is absent."""
    jwks = _key_set(client)
    try:
        usable = {info.kid for info in validate_jwks(jwks) if info.algorithm} if jwks else set()
    except JwksError:  # nothing in the set verifies; the client page says why
        return {}
    added = {record.kid: record.added_at for record in client.key_records.all()}
    expiries = {}
    for jwk in jwks["keys"] if usable else []:
        kid = jwk.get("kid") if isinstance(jwk, dict) else None
        if kid in usable and (expiry := key_expiry(jwk, added.get(kid))) is not None:
            expiries[kid] = expiry
    return expiries


def warning_horizon(now: datetime) -> datetime:
    return now + timedelta(days=settings.BULKOPS_KEY_EXPIRY_WARNING_DAYS)


def keys_near_expiry(now: datetime) -> list[KeyWarning]:
    """Active clients' keys expiring before the warning horizon, soonest first."""
    clients = (
        BackendClient.objects.filter(status=BackendClient.Status.ACTIVE)
        .select_related("cached_jwks")
        .prefetch_related("key_records")
    )
    warnings = [
        KeyWarning(client, kid, expiry, key_state(expiry, now))
        for client in clients
        for kid, expiry in key_expiries(client).items()
        if key_state(expiry, now)
    ]
    return sorted(warnings, key=lambda w: (w.expiry.at, w.client.name, w.kid))


def key_state(expiry: KeyExpiry | None, now: datetime) -> str:
    """A key's badge: "expired" (refused at the token endpoint), "rotate" (past the
    rotation policy only), "expiring" (before the warning horizon), or "" (fine)."""
    if expiry is None or expiry.at > warning_horizon(now):
        return ""
    if expiry.at > now:
        return "expiring"
    return "expired" if expiry.enforced else "rotate"
