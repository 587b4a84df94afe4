from __future__ import annotations

import pytest

from tests.accounts.conftest import console_client  # noqa: F401 - for the check pages
from tests.exports.conftest import store  # noqa: F401
from tests.remotes.remote_server import RemoteBulkops, remote_bulkops


@pytest.fixture(scope="session")
def remote(tmp_path_factory) -> RemoteBulkops:
    """One remote bulkops for the session, with default settings."""
    with remote_bulkops(tmp_path_factory.mktemp("remote") / "var") as server:
        yield server
