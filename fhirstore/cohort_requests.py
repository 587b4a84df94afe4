"""The Bulk Cohort API's asynchronous Group create (v4 digest §5, §7.D): a client posts
a `bulk-cohort-group` Group, gets a status URL at once, and a worker computes the
members (fhirstore/cohorts.py).

The request is checked before it is accepted, so a filter bulkops cannot evaluate is a
400 at once (SHALL reject), and nothing is queued. The Group's id is chosen at
acceptance, so a task delivered twice replaces the same Group rather than making two.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.audit import record_event
from accounts.models import AuditEvent, BackendClient
from bulkops.fhir.cohort import CohortCreate, CohortError
from bulkops.task_queue import enqueue
from fhirstore.cohorts import save_cohort
from fhirstore.models import CohortRequest
from fhirstore.task_names import BUILD_COHORT

logger = logging.getLogger(__name__)


def accept_cohort_request(
    *, client: BackendClient, create: CohortCreate, request: HttpRequest | None = None
) -> CohortRequest:
    """Record a checked create and queue the build."""
    with transaction.atomic():
        cohort = CohortRequest.objects.create(
            client=client,
            name=create.name,
            filters=list(create.filters),
            patient_ids=list(create.patient_ids) if create.patient_ids is not None else None,
            group_id=str(uuid.uuid4()),
        )
        record_event(
            actor_type=AuditEvent.ActorType.CLIENT,
            actor=client.client_id,
            action="group.cohort_requested",
            request=request,
            details={
                "request": str(cohort.uuid),
                "group": cohort.group_id,
                "filters": cohort.filters,
            },
        )
        transaction.on_commit(lambda: enqueue(BUILD_COHORT, request_id=cohort.pk))
    return cohort


def build_cohort(request_id: int, *, now: datetime | None = None) -> None:
    """Compute and store the requested Group; a request already done is left alone."""
    cohort = CohortRequest.objects.select_related("client").get(pk=request_id)
    if cohort.status != CohortRequest.Status.ACCEPTED:
        return
    moment = now or timezone.now()
    try:
        save_cohort(
            group_id=cohort.group_id,
            name=cohort.name,
            filters=cohort.filters,
            actor=cohort.client.client_id,
            actor_type=AuditEvent.ActorType.CLIENT,
            now=moment,
            within=cohort.patient_ids,
        )
    except CohortError as error:
        fail_cohort(cohort, str(error))
        return
    CohortRequest.objects.filter(pk=cohort.pk, status=CohortRequest.Status.ACCEPTED).update(
        status=CohortRequest.Status.COMPLETED, completed_at=moment
    )
    logger.info("cohort built", extra={"client_id": cohort.client.client_id})


def fail_cohort(cohort: CohortRequest, reason: str) -> None:
    CohortRequest.objects.filter(pk=cohort.pk, status=CohortRequest.Status.ACCEPTED).update(
        status=CohortRequest.Status.FAILED,
        failure_reason=reason[:2000],
        completed_at=timezone.now(),
    )


def batch_response(cohort: CohortRequest, group: dict[str, Any]) -> dict[str, Any]:
    """What the status URL answers once the Group exists: the asynchronous interaction
    pattern's batch-response Bundle with the create's outcome."""
    version = group.get("meta", {}).get("versionId", "1")
    return {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [
            {
                "resource": group,
                "response": {
                    "status": "201 Created",
                    "location": f"Group/{cohort.group_id}/_history/{version}",
                },
            }
        ],
    }
