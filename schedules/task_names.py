"""The names schedules.tasks registers its tasks under, for code that queues them without
importing that module (bulkops.task_queue.enqueue)."""

RUN_SCHEDULE = "schedules.tasks.run_schedule_task"  # also the name beat's entries carry
NOTIFY_EXPORT = "schedules.tasks.notify_export_task"
SEND_NOTIFICATION = "schedules.tasks.send_notification_task"
