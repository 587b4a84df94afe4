"""Console sign-in lock-outs, counted by django-axes (settings `AXES_*`).

Failed sign-ins are stored in the database, so every web process sees the same count,
and counted per username and peer address together: after BULKOPS_LOGIN_MAX_FAILURES
failures that pair is refused for BULKOPS_LOGIN_COOLOFF_MINUTES. A stranger who guesses
a known operator's password locks only their own address out of that account; the
operator still signs in from theirs.

Operators locked out by mistake are released with `manage.py axes_reset_username NAME`
(lower-case) or `axes_reset_ip ADDRESS`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse


def attempted_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str | None:
    """The username a sign-in tried, as lock-outs count it: lower-cased, because sign-in
    matches usernames whatever their case (allauth), so "Ada" and "ADA" are one account
    and must share one count. The console's form passes `username`."""
    name = (credentials or {}).get("username")
    return name.lower() if isinstance(name, str) else None


def lockout_message() -> str:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return (
        "Too many failed sign-ins for this username from your address. Try again in "
        f"{minutes} minutes, or ask an admin to unlock it."
    )


def lockout_response(
    request: HttpRequest, original_response: HttpResponse, credentials: dict[str, Any] | None
) -> HttpResponse:
    """What a locked-out sign-in gets instead of axes' bare text page: the page that
    refused it, as 429 Too Many Requests. The console's form says why (ConsoleLoginForm)."""
    original_response.status_code = 429
    return original_response
