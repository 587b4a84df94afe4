"""The names submissions.tasks registers its tasks under (bulkops.task_queue.enqueue)."""

FETCH_MANIFEST = "submissions.tasks.fetch_manifest_task"
LOAD_FILE = "submissions.tasks.load_file_task"
PURGE_SUBMISSION = "submissions.tasks.purge_submission_task"
