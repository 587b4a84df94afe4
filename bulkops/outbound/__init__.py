"""Every HTTP request bulkops itself makes: key servers (a client's jwks_uri), remote
Bulk Data servers (discovery, tokens, kick-off, status polls, file downloads, DELETE,
server checks) and the probe of our own storage.

A URL typed into a form must not turn bulkops into a proxy for the network it runs in
(SSRF): cloud metadata at 169.254.169.254, the database on 10.0.0.5, an admin port on
127.0.0.1. So every connection, each redirect hop included, goes to an address that was
resolved and checked at connect time (`guard`), and BULKOPS_ALLOW_PRIVATE_FETCH=true
lifts the check for deployments whose servers live on a private network. Commands an
operator runs from a shell against URLs they typed pass their own rule instead.

Redirects are followed only where the caller asks (file downloads, which may be sent
on to a presigned object-store URL); proxies come only from BULKOPS_OUTBOUND_PROXY, never
from the environment; every request has a deadline for the whole exchange and a size
cap, or is streamed; failures are FetchError with a sentence for people.
"""

from bulkops.outbound.client import Fetched, Streamed, request, stream
from bulkops.outbound.guard import AddressRefused, FetchError, refusal
from bulkops.outbound.origins import same_origin

__all__ = [
    "AddressRefused",
    "FetchError",
    "Fetched",
    "Streamed",
    "refusal",
    "request",
    "same_origin",
    "stream",
]
