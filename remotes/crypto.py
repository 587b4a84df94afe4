"""Encryption at rest for secrets bulkops must use again later (our private keys at
remote servers), unlike passwords and tokens, which are only ever stored as hashes.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) with keys from settings:
BULKOPS_ENCRYPTION_KEYS lists Fernet keys, newest first, so an operator can rotate by
prepending a key and re-saving (`MultiFernet.rotate`); without it a key is derived from
SECRET_KEY, so rotating SECRET_KEY then needs the old value kept in the list.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class DecryptionError(Exception):
    """Stored ciphertext no key in settings can open (keys rotated away, or tampering)."""


def _fernet() -> MultiFernet:
    keys = list(settings.BULKOPS_ENCRYPTION_KEYS)
    if not keys:
        digest = hashlib.sha256(b"bulkops-encryption:" + settings.SECRET_KEY.encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "The stored secret cannot be decrypted with the configured keys "
            "(BULKOPS_ENCRYPTION_KEYS / SECRET_KEY changed?)."
        ) from None
