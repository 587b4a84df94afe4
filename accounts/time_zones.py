"""Each operator sees times in their own time zone.

Times are stored in UTC. `OperatorTimeZoneMiddleware` activates the signed-in operator's
zone (their profile's, else settings.TIME_ZONE) for the request, so templates, `|date`
and date filters (`created_at__date`) all work in it; base.html names it on every page.
Programs are unaffected: FHIR answers and manifests format instants in UTC themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from accounts.audit import record_event
from accounts.models import AuditEvent, OperatorProfile
from bulkops.env import time_zone_names


def chosen_time_zone(user: AbstractBaseUser) -> str:
    """The zone `user` chose, or "" for the site's default."""
    profile = OperatorProfile.objects.filter(user=user)
    return profile.values_list("time_zone", flat=True).first() or ""


def time_zone_of(user: AbstractBaseUser) -> str:
    """The IANA name `user` sees times in."""
    return chosen_time_zone(user) or settings.TIME_ZONE


@transaction.atomic
def set_time_zone(
    *, user: AbstractBaseUser, time_zone: str, request: HttpRequest | None = None
) -> str:
    """Show `user` times in `time_zone` from their next page on; "" means the site's
    default. Returns the zone now in effect. Raises ValidationError for a name the zone
    database does not know."""
    if time_zone and time_zone not in time_zone_names():
        raise ValidationError({"time_zone": f"{time_zone!r} is not a time zone name."})
    before = time_zone_of(user)
    OperatorProfile.objects.update_or_create(user=user, defaults={"time_zone": time_zone})
    after = time_zone or settings.TIME_ZONE
    record_event(
        actor_type=AuditEvent.ActorType.OPERATOR,
        actor=user.get_username(),
        action="operator.time_zone_changed",
        request=request,
        details={"username": user.get_username(), "from": before, "to": after},
    )
    return after


class OperatorTimeZoneMiddleware:
    """Activates the signed-in operator's time zone for the request (after
    AuthenticationMiddleware)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            zone = time_zone_of(request.user) if request.user.is_authenticated else ""
        except (OperationalError, InterfaceError):
            # The database is down: the view meets the same error and answers 503
            # (bulkops/unavailable.py), which it could not do for an error raised here.
            zone = ""
        if zone:
            timezone.activate(ZoneInfo(zone))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
