"""The store's tests reuse the operator and export casts: load_fhir, the console,
backend clients with real keys and a small linked store."""

from __future__ import annotations

from tests.accounts.conftest import console_client  # noqa: F401
from tests.exports.conftest import (  # noqa: F401 - fixtures used by this folder's tests
    client_a,
    client_b,
    jwk_a,
    jwk_b,
    load_fhir,
    make_fhir_client,
    store,
)
