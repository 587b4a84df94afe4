"""The security suite reuses the export cast (client_a owns, client_b must get 404) and
the operator cast (one console user or API token per role)."""

from tests.accounts.conftest import console_client  # noqa: F401
from tests.api.conftest import anonymous, api_as, fast_password_hashing, fresh_throttles  # noqa: F401
from tests.exports.conftest import (  # noqa: F401
    client_a,
    client_b,
    jwk_a,
    jwk_b,
    make_fhir_client,
    store,
)
from tests.security.test_access_matrix import url_of  # noqa: F401
