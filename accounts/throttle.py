"""Rate limiting failed token requests, per claimed client and per peer address.

The counts come from the audit trail (every refused token request is an AuditEvent
anyway), so every gunicorn process on every machine sees the same numbers with one
indexed query each. Over the limit the endpoint answers 429 with Retry-After and an
`invalid_request` body: RFC 6749 has no throttling code, 429 is what HTTP clients know
to back off from, and `error` stays a registered code for OAuth libraries.

Counting per claimed client lets anyone who knows a client_id slow that client down for
a few minutes; the per-address count stops the same caller cycling client_ids. Refusals
for being rate-limited do not count, so a limit lifts WINDOW after the last real failure.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection

from accounts.models import FAILURE, TOKEN_REQUEST, AuditEvent
from accounts.oauth import INVALID_REQUEST, OAuthError

WINDOW = 300  # seconds
MAX_FAILURES_PER_CLIENT = 10
MAX_FAILURES_PER_ADDRESS = 30
RATE_LIMITED = "rate_limited"


# Raw SQL on purpose. The failed-request condition is written out as literals, the same
# terms as the partial indexes `audit_failed_token_*`: SQLite cannot match a bound
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
    f"WHERE actor = %s AND {_FAILED_SINCE}), "
    f"(SELECT COUNT(*) FROM {AuditEvent._meta.db_table} "
    f"WHERE ip_address = %s AND {_FAILED_SINCE})"
)


def check_token_rate(*, claimed_client_id: str, address: str | None, now: datetime) -> None:
    """Raise a 429 OAuthError if this client or address failed too often lately."""
    since = connection.ops.adapt_datetimefield_value(now - timedelta(seconds=WINDOW))
    with connection.cursor() as cursor:
        # NULL matches nothing: no claimed client (or address) counts no failures.
        cursor.execute(_RECENT_FAILURES, [claimed_client_id or None, since, address, since])
        by_client, by_address = cursor.fetchone()
    if by_client >= MAX_FAILURES_PER_CLIENT or by_address >= MAX_FAILURES_PER_ADDRESS:
        raise OAuthError(
            INVALID_REQUEST,
            f"Too many failed token requests; try again in {WINDOW} seconds.",
            RATE_LIMITED,
            status=429,
            headers={"Retry-After": str(WINDOW)},
        )
