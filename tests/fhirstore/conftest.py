"""Store tests reuse the export cast: clients with real tokens and a small linked store."""

from tests.exports.conftest import (  # noqa: F401
    client_a,
    client_b,
    jwk_a,
    jwk_b,
    load_fhir,
    make_fhir_client,
    store,
)
