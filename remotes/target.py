"""What a Bulk Data client needs to know about one server: the plain-data form of a
RemoteServer that the export runner and the conformance checks take, so neither needs
the database to talk to a server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from exports.bulk_client import ExchangeHook, TokenSource
from remotes.discovery import discover_token_url
from remotes.token_destination import TokenDestinationRefused, token_destination_problem


@dataclass(frozen=True)
class RemoteTarget:
    base_url: str
    client_id: str
    private_jwk: dict[str, Any] = field(repr=False)
    scope: str
    token_url: str = ""  # empty: discover from .well-known/smart-configuration
    group_id: str = ""
    verify_tls: bool = True
    # A token URL on another origin that an admin confirmed for this very base URL.
    confirmed_token_url: str = ""

    def token_url_problem(self, token_url: str) -> str:
        """Why our token must not be requested at `token_url` (remotes.token_destination),
        in a sentence an operator can act on; "" when it may."""
        return token_destination_problem(self.base_url, token_url, self.confirmed_token_url)

    def token_source(self, scope: str, *, on_exchange: ExchangeHook | None = None) -> TokenSource:
        """Tokens for `scope` from the configured or discovered token endpoint, or
        TokenDestinationRefused. Decided where the token is about to be asked for (in the
        worker): the row may have changed since the console judged it, and discovery may
        answer differently."""
        token_url = self.token_url or discover_token_url(
            self.base_url, verify_tls=self.verify_tls, on_exchange=on_exchange
        )
        if problem := self.token_url_problem(token_url):
            raise TokenDestinationRefused(problem)
        return TokenSource(
            token_url,
            self.client_id,
            self.private_jwk,
            scope,
            verify_tls=self.verify_tls,
            on_exchange=on_exchange,
        )
