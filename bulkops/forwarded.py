"""Forwarded headers count only when bulkops' own TLS proxy set them.

Anyone can send X-Forwarded-Proto and X-Forwarded-For. Believed from anyone, the first
made plain http look like https (an assertion whose `aud` was the https token URL then
passed over http) and the second chose the address the audit trail records and the
rate limits count. So they are believed only behind a TLS proxy
(BULKOPS_BEHIND_TLS_PROXY) and only from the proxy's addresses
(BULKOPS_TRUSTED_PROXIES); that proxy must overwrite, not pass on, what clients send.

gunicorn believes none of them itself (gunicorn.conf.py): this middleware, first in
MIDDLEWARE, applies the one rule under any server, the test client included. From any
other peer it removes the headers, so Django's SECURE_PROXY_SSL_HEADER never sees one;
from a trusted proxy it sets REMOTE_ADDR to the client the proxy saw, so the audit
trail, the token rate limit, DRF's throttles and allauth all read that one address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from bulkops.env import IPNetwork

FORWARDED_HEADERS = (
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_FORWARDED",
)


class ForwardedHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        trusted = settings.BULKOPS_TRUSTED_PROXIES
        peer = request.META.get("REMOTE_ADDR", "")
        if is_trusted(peer, trusted):
            forwarded_for = request.META.get("HTTP_X_FORWARDED_FOR", "")
            request.META["REMOTE_ADDR"] = client_address(peer, forwarded_for, trusted)
        else:
            for name in FORWARDED_HEADERS:
                request.META.pop(name, None)
        return self.get_response(request)


def client_address(peer: str, forwarded_for: str, trusted: Sequence[IPNetwork]) -> str:
    """The address of the nearest hop that is not one of our proxies. Each proxy appends
    the address it saw to X-Forwarded-For, so the list is read from the right, and only
    while the hop that told us is trusted; whatever a client wrote further left is not
    believed. An entry that is not an IP address ends the walk at the hop before it."""
    address = peer
    for hop in reversed(forwarded_for.split(",")):
        if not is_trusted(address, trusted):
            break
        try:
            address = str(ipaddress.ip_address(hop.strip()))
        except ValueError:
            break
    return address


def is_trusted(address: str, trusted: Sequence[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
