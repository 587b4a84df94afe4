"""Periodic upkeep of the token endpoint's tables (scheduled in CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from accounts.assertions import prune_used_assertions


@shared_task
def prune_used_assertions_task() -> int:
    """Drop spent jtis that have expired; the token endpoint no longer does it per request."""
    return prune_used_assertions(timezone.now())
