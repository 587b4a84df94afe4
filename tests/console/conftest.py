"""Console tests reuse the operator and export casts."""

import pytest

from tests.accounts.conftest import console_client  # noqa: F401
from tests.exports.conftest import (  # noqa: F401
    client_a,
    client_b,
    jwk_a,
    jwk_b,
    make_fhir_client,
    store,
)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    """Every console test creates operators; PBKDF2's deliberate slowness buys nothing
    here (login itself is covered with the real hasher in tests/accounts)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
