"""When a client's public key stops being trusted, and why.

A key expires at the earliest of: its x5c leaf certificate's notAfter, its JWK `exp`
member (some issuers add one), and bulkops' rotation policy (the day bulkops first held
the key + BULKOPS_CLIENT_KEY_MAX_AGE_DAYS, 0 switching the policy off). The first two are
the issuer's word, so past them the key verifies no assertion; the policy only tells
operators to rotate. Pure functions of the JWK and dates: no database here.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from django.conf import settings

CERTIFICATE = "certificate"
DECLARED = "exp"
POLICY = "rotation policy"


@dataclass(frozen=True)
class KeyExpiry:
    """The moment a key expires; `enforced` when the token endpoint refuses it after."""

    at: datetime
    reason: str
    enforced: bool

    def describe(self) -> str:
        if self.reason == CERTIFICATE:
            return "its x5c certificate's notAfter"
        if self.reason == DECLARED:
            return "its JWK exp"
        days = settings.BULKOPS_CLIENT_KEY_MAX_AGE_DAYS
        return f"rotation policy: {days} days after it was added"


def _certificate(jwk: dict[str, Any]) -> x509.Certificate | None:
    """The x5c leaf certificate (RFC 7517 §4.7: base64 DER, leaf first); ValueError if
    x5c is present but holds no certificate."""
    chain = jwk.get("x5c")
    if chain is None:
        return None
    if not isinstance(chain, list) or not chain or not isinstance(chain[0], str):
        raise ValueError("x5c must be a non-empty array of base64 certificates")
    try:
        return x509.load_der_x509_certificate(base64.b64decode(chain[0], validate=True))
    except (binascii.Error, ValueError):
        raise ValueError("its x5c certificate does not parse") from None


def _declared(jwk: dict[str, Any]) -> datetime | None:
    value = jwk.get("exp")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("exp must be a number of seconds since 1970")
    return datetime.fromtimestamp(value, UTC)


def expiry_problem(jwk: dict[str, Any], public_key: Any) -> str:
    """Why the key's x5c or exp cannot be read, or "" if they can (or are absent).

    `public_key` is the JWK's parsed key: a certificate for another key is refused,
    since RFC 7517 §4.7 requires the certificate to hold the JWK's own key."""
    try:
        certificate = _certificate(jwk)
        _declared(jwk)
    except ValueError as error:
        return str(error)
    if certificate is not None and (
        certificate.public_key().public_numbers() != public_key.public_numbers()
    ):
        return "its x5c certificate is for another key"
    return ""


def issuer_expiry(jwk: dict[str, Any]) -> KeyExpiry | None:
    """The earlier of the certificate's notAfter and the JWK's exp; None without either
    (or when they do not parse: such a key is never usable, see `expiry_problem`)."""
    try:
        certificate, declared = _certificate(jwk), _declared(jwk)
    except ValueError:
        return None
    candidates = [
        KeyExpiry(certificate.not_valid_after_utc, CERTIFICATE, True) if certificate else None,
        KeyExpiry(declared, DECLARED, True) if declared else None,
    ]
    return min((c for c in candidates if c), key=lambda c: c.at, default=None)


def key_expiry(jwk: dict[str, Any], added_at: datetime | None) -> KeyExpiry | None:
    """The earliest of the issuer's expiry and the rotation policy's for a key first held
    at `added_at` (None: not recorded, so no policy date)."""
    candidates = [issuer_expiry(jwk)]
    max_age = settings.BULKOPS_CLIENT_KEY_MAX_AGE_DAYS
    if max_age and added_at is not None:
        candidates.append(KeyExpiry(added_at + timedelta(days=max_age), POLICY, False))
    return min((c for c in candidates if c), key=lambda c: c.at, default=None)
