"""The names fhirstore.tasks registers its tasks under, for code that queues them without
importing that module (bulkops.task_queue.enqueue)."""

BUILD_COHORT = "fhirstore.tasks.build_cohort_task"
