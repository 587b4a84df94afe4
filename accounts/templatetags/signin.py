"""Template tags for the sign-in pages."""

from __future__ import annotations

from django import template
from django.conf import settings

register = template.Library()


@register.simple_tag
def password_reset_by_email() -> bool:
    """Whether bulkops can mail a reset link (BULKOPS_EMAIL_URL is set). allauth renders
    the password field's help text without a request, so a context processor would not
    reach it."""
    return bool(settings.BULKOPS_PASSWORD_RESET_BY_EMAIL)
