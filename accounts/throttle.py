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

from django.db.models import Count, Q

from accounts.models import TOKEN_REQUEST, AuditEvent
from accounts.oauth import INVALID_REQUEST, OAuthError

WINDOW = 300  # seconds
MAX_FAILURES_PER_CLIENT = 10
MAX_FAILURES_PER_ADDRESS = 30
RATE_LIMITED = "rate_limited"


def check_token_rate(*, claimed_client_id: str, address: str | None, now: datetime) -> None:
    """Raise a 429 OAuthError if this client or address failed too often lately."""
    by_client = Q(actor=claimed_client_id) if claimed_client_id else Q(pk__in=[])
    by_address = Q(ip_address=address) if address else Q(pk__in=[])
    # Both counts in one query: this runs before every token request.
    counts = (
        AuditEvent.objects.filter(
            by_client | by_address,
            action=TOKEN_REQUEST,
            outcome=AuditEvent.Outcome.FAILURE,
            created_at__gte=now - timedelta(seconds=WINDOW),
        )
        .exclude(reason=RATE_LIMITED)
        .aggregate(client=Count("pk", filter=by_client), address=Count("pk", filter=by_address))
    )
    if counts["client"] >= MAX_FAILURES_PER_CLIENT or counts["address"] >= MAX_FAILURES_PER_ADDRESS:
        raise OAuthError(
            INVALID_REQUEST,
            f"Too many failed token requests; try again in {WINDOW} seconds.",
            RATE_LIMITED,
            status=429,
            headers={"Retry-After": str(WINDOW)},
        )
