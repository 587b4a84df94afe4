"""What a status poll answers besides a manifest, shared by $export and $export-v4:
the failed job's error and the throttled poll's 429 (spec §2.1, v4 digest §1.9)."""

from __future__ import annotations

from datetime import datetime

from bulkops.fhir.outcome import PROCESSING, THROTTLED, FhirError
from exports.models import ExportJob
from exports.services import PollDecision, register_poll

# A failed job is final: 424 (the status request depends on an export that failed) with
# the non-transient `processing` code (spec §2.2). Not 500: smart-fetch and cumulus-etl
# retry a 500 (like 408, 429, 502, 503 and 504) for minutes whatever the outcome says,
# so a failed export looked like a server blip. Transient answers are 429 (`throttled`)
# and 503 (`transient`, bulkops.unavailable): poll again after Retry-After.
FAILED_STATUS = 424


def failed_export(job: ExportJob) -> FhirError:
    return FhirError(FAILED_STATUS, job.failure_reason or "The export failed.", code=PROCESSING)


def counted_poll(job: ExportJob, now: datetime) -> PollDecision:
    """Count a poll of a running job; raise the 429 for a client polling far too fast."""
    poll = register_poll(job, now)
    if poll.throttled:
        raise FhirError(
            429,
            f"Polling too often: wait {poll.retry_after} seconds between status requests.",
            code=THROTTLED,
            headers={"Retry-After": str(poll.retry_after * 5)},
        )
    return poll
