"""The names transfers.tasks registers its tasks under, for code that queues them without
importing that module (bulkops.task_queue.enqueue)."""

SEND_DELIVERY = "transfers.tasks.send_delivery_task"
CLOSE_DELIVERY = "transfers.tasks.close_delivery_task"
COPY_DELIVERY = "transfers.tasks.copy_delivery_task"
