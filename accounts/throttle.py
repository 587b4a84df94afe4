"""Rate limiting failed token requests, per client and per peer address.

The counts come from the audit trail (every refused token request is an AuditEvent
anyway), so every gunicorn process on every machine sees the same numbers with one
indexed query each. Over a limit the endpoint answers 429 with Retry-After and an
`invalid_request` body: RFC 6749 has no throttling code, 429 is what HTTP clients know
to back off from, and `error` stays a registered code for OAuth libraries.

Anyone can name a client_id, so a client's count holds only the refusals of requests its
own key signed (actor type `client`: a replayed jti, an exp too far ahead, a refused
scope, a disabled client). Junk naming it (forged, unsigned, an unknown kid, not a JWT)
and old assertions of its that anyone may resend (expired) are recorded as `unverified`
and cannot lock it out. An address's count holds every
refusal from it, which stops one caller cycling client_ids. Refusals for being
rate-limited do not count, so a limit lifts one window after the last real failure.
Limits and window: the BULKOPS_TOKEN_* settings.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection

from accounts.models import CLIENT, FAILURE, TOKEN_REQUEST, AuditEvent
from accounts.oauth import INVALID_REQUEST, OAuthError

RATE_LIMITED = "rate_limited"


# Raw SQL on purpose. The failed-request conditions are written out as literals, the
# same terms as the partial indexes `audit_failed_token_*`: SQLite cannot match a bound
# parameter to an index's WHERE, so only literals let it use them as PostgreSQL does. And
# this runs before every token request, where compiling the ORM aggregate cost more than
# running it (docs/performance.md).
_FAILED_SINCE = (
    f"action = '{TOKEN_REQUEST}' AND outcome = '{FAILURE}' AND created_at >= %s "
    f"AND reason <> '{RATE_LIMITED}'"
)
# Only our own constants are formatted in; the caller's values are bound parameters.
_RECENT_FAILURES = (
    f"SELECT (SELECT COUNT(*) FROM {AuditEvent._meta.db_table} "  # noqa: S608
    f"WHERE actor = %s AND actor_type = '{CLIENT}' AND {_FAILED_SINCE}), "
    f"(SELECT COUNT(*) FROM {AuditEvent._meta.db_table} "
    f"WHERE ip_address = %s AND {_FAILED_SINCE})"
)


def check_token_rate(*, claimed_client_id: str, address: str | None, now: datetime) -> None:
    """Raise a 429 OAuthError if the named client's own signed requests, or any requests
    from this address, failed too often lately."""
    window = settings.BULKOPS_TOKEN_FAILURE_WINDOW
    since = connection.ops.adapt_datetimefield_value(now - timedelta(seconds=window))
    with connection.cursor() as cursor:
        # NULL matches nothing: no claimed client (or address) counts no failures.
        cursor.execute(_RECENT_FAILURES, [claimed_client_id or None, since, address, since])
        by_client, by_address = cursor.fetchone()
    if (
        by_client >= settings.BULKOPS_TOKEN_MAX_FAILURES_PER_CLIENT
        or by_address >= settings.BULKOPS_TOKEN_MAX_FAILURES_PER_ADDRESS
    ):
        raise OAuthError(
            INVALID_REQUEST,
            f"Too many failed token requests; try again in {window} seconds.",
            RATE_LIMITED,
            status=429,
            headers={"Retry-After": str(window)},
        )
