"""The store's tests reuse the operator and export casts: load_fhir, the console and
backend clients with real keys."""

from __future__ import annotations

from tests.accounts.conftest import console_client  # noqa: F401
from tests.exports.conftest import (  # noqa: F401 - fixtures used by this folder's tests
    client_a,
    jwk_a,
    load_fhir,
    make_fhir_client,
)
