"""The names exports.tasks registers its tasks under, for code that queues them without
importing that module (bulkops.task_queue.enqueue)."""

PLAN_EXPORT = "exports.tasks.plan_export_task"
RUN_PARTITION = "exports.tasks.run_partition_task"
FINALIZE_EXPORT = "exports.tasks.finalize_export_task"
