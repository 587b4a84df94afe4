"""Celery tasks of the store. Ids in; the work is in fhirstore.cohort_requests."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from fhirstore.cohort_requests import build_cohort, fail_cohort
from fhirstore.models import CohortRequest
from fhirstore.task_names import BUILD_COHORT


class CohortTask(Task):
    """A build that gives up marks its request failed with a reason a person can read."""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        cohort = CohortRequest.objects.filter(pk=kwargs.get("request_id")).first()
        if cohort is not None:
            fail_cohort(
                cohort, f"The cohort build stopped after an internal error ({type(exc).__name__})."
            )


@shared_task(
    name=BUILD_COHORT, base=CohortTask, bind=True, acks_late=True, reject_on_worker_lost=True
)
def build_cohort_task(self: Task, request_id: int) -> None:
    build_cohort(request_id)
