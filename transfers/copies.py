"""Copying a remote server's export into this bulkops: once the remote export has
downloaded its files into our storage, they are imported here as one Bulk Submit
submission, fetched and loaded by the submissions app exactly as another provider's
would be (from our own file routes, with the delivery's credential).

The submission belongs to a backend client of its own, "bulkops copies": disabled and
with an empty key set, so no token can ever be issued for it; it only owns the rows.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import BackendClient
from bulkops.fhir.scopes import BULK_SUBMIT
from bulkops.fhir.submit import COMPLETED, SubmitRequest
from submissions.models import Submission
from submissions.services import is_complete, receive_submission
from transfers import credentials
from transfers.models import Delivery

COPIES_CLIENT_NAME = "bulkops copies"


@transaction.atomic
def copies_client() -> BackendClient:
    found = BackendClient.objects.filter(
        name=COPIES_CLIENT_NAME, status=BackendClient.Status.DISABLED, jwks={"keys": []}
    ).first()
    return found or BackendClient.objects.create(
        name=COPIES_CLIENT_NAME,
        status=BackendClient.Status.DISABLED,
        jwks={"keys": []},
        scopes=BULK_SUBMIT,
    )


def submit_here(
    delivery: Delivery, manifest_url: str, fhir_base_url: str, secret: str
) -> Submission:
    """Register the copy's one submission (manifest and `completed` at once)."""
    client = copies_client()
    return receive_submission(
        client=client,
        submit=SubmitRequest(
            submitter=client.client_id,
            submission_id=delivery.submission_id,
            status=COMPLETED,
            manifest_url=manifest_url,
            replaces_manifest_url="",
            fhir_base_url=fhir_base_url,
            file_headers=credentials.file_headers(secret),
        ),
        request=None,
        now=timezone.now(),
    )


def copy_finished(delivery: Delivery) -> bool:
    """Whether the copy's submission has loaded (or failed) every file."""
    return delivery.local_submission is not None and is_complete(delivery.local_submission)
