"""Console tests reuse the operator and export casts."""

from tests.accounts.conftest import console_client  # noqa: F401
from tests.exports.conftest import (  # noqa: F401
    client_a,
    client_b,
    jwk_a,
    jwk_b,
    make_fhir_client,
    store,
)
