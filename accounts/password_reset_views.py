"""Password reset by email on the sign-in side, offered only where bulkops can send mail
(BULKOPS_EMAIL_URL). Without it the reset pages say to ask an admin, who resets the
password on the Operators page; nothing tries to send mail to a server that is not there.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from functools import wraps
from typing import Any

from allauth.account import views as allauth_views
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

logger = logging.getLogger(__name__)

View = Callable[..., HttpResponse]


def needs_email(view: View) -> View:
    """`view` where bulkops sends mail; elsewhere a page that says to ask an admin."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.BULKOPS_PASSWORD_RESET_BY_EMAIL:
            return render(request, "account/password_reset_unavailable.html")
        return view(request, *args, **kwargs)

    return wrapped


@needs_email
def password_reset(request: HttpRequest) -> HttpResponse:
    """allauth's reset form. A mail server that fails gets the answer a sent mail gets
    (the done page says to ask an admin if nothing arrives): a 500 only for addresses
    that belong to an operator would tell a stranger which ones do."""
    try:
        return allauth_views.password_reset(request)
    except (smtplib.SMTPException, OSError) as error:
        logger.error("password reset mail not sent", extra={"error": type(error).__name__})
        return redirect("account_reset_password_done")


password_reset_done = needs_email(allauth_views.password_reset_done)
