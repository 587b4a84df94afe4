"""The names remotes.tasks registers its tasks under, for code that queues them without
importing that module (bulkops.task_queue.enqueue)."""

RUN_REMOTE_EXPORT = "remotes.tasks.run_remote_export_task"
RUN_SERVER_CHECK = "remotes.tasks.run_server_check_task"
