"""Ending an operator's console sessions (the database session engine's rows)."""

from __future__ import annotations

from django.contrib.auth import SESSION_KEY
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.sessions.models import Session
from django.utils import timezone


def end_all(user: AbstractBaseUser) -> int:
    """Delete the stored sessions signed in as `user`; return how many. A new password
    already turns them away at their next request (Django's session hash check); this
    ends them now and counts them for the audit line."""
    sessions = Session.objects.filter(expire_date__gt=timezone.now())
    mine = [s.pk for s in sessions.iterator() if s.get_decoded().get(SESSION_KEY) == str(user.pk)]
    Session.objects.filter(pk__in=mine).delete()
    return len(mine)
