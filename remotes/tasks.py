"""Celery tasks of the remotes app."""

from __future__ import annotations

from celery import shared_task

from remotes.models import ServerCheck
from remotes.server_checks import run_check


@shared_task
def run_server_check_task(check_id: int) -> str:
    check = ServerCheck.objects.select_related("server").get(pk=check_id)
    return run_check(check=check).status
