"""What a Bulk Data client needs to know about one server: the plain-data form of a
RemoteServer that the export runner and the conformance checks take, so neither needs
the database to talk to a server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RemoteTarget:
    base_url: str
    client_id: str
    private_jwk: dict[str, Any] = field(repr=False)
    scope: str
    token_url: str = ""  # empty: discover from .well-known/smart-configuration
    group_id: str = ""
    verify_tls: bool = True
