"""Where our access token for a remote server may come from and go to.

A remote export or a server check asks the token endpoint for a token, then sends it as
`Authorization: Bearer` to the FHIR base URL. Whoever sets the base URL therefore
receives every token the token endpoint hands out. If the two were on different
origins, a base URL naming an attacker's host whose smart-configuration (or the form's
token endpoint field) names a real server's token endpoint — this bulkops' own, for
the self-check remote whose key is a backend client here — would deliver that real
server's tokens to the attacker.

So a token is requested only where it belongs to the base URL: at the same origin
(scheme, host and port, RFC 6454), or at the exact token URL an admin confirmed for
exactly this base URL. Everything that requests a token asks this module first, in the
worker at run time, whatever the console showed earlier.
"""

from __future__ import annotations

from bulkops.outbound.origins import origin_text, same_origin


class TokenDestinationRefused(Exception):
    """No token was requested: the message says why and what an admin can do."""


def token_destination_problem(base_url: str, token_url: str, confirmed_token_url: str = "") -> str:
    """Why no token may be requested at `token_url` for the FHIR server at `base_url`:
    a plain sentence saying so and what an admin can do; "" when one may.

    `confirmed_token_url` is the token URL an admin confirmed for this very base URL
    ("" when none is); the caller passes it only while the base URL is the confirmed one.
    """
    if same_origin(token_url, base_url):
        return ""
    if confirmed_token_url and token_url == confirmed_token_url:
        return ""
    return (
        f"bulkops will not request a token at {token_url}: it is not on the origin of the "
        f"FHIR base URL ({origin_text(base_url)}), to which the token would be sent, and no "
        "admin has confirmed it for that base URL. If that endpoint really issues this FHIR "
        "server's tokens, an admin can confirm it on the remote server's page."
    )
