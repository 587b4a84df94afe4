"""Celery tasks of deliveries: ids in; the work is in transfers.delivery_runner."""

from __future__ import annotations

from celery import shared_task

from transfers.delivery_runner import close_delivery, copy_delivery, send_delivery
from transfers.task_names import CLOSE_DELIVERY, COPY_DELIVERY, SEND_DELIVERY


@shared_task(name=SEND_DELIVERY, acks_late=True)
def send_delivery_task(delivery_id: int) -> None:
    send_delivery(delivery_id)


@shared_task(name=CLOSE_DELIVERY, acks_late=True)
def close_delivery_task(delivery_id: int, submission_status: str) -> None:
    close_delivery(delivery_id, submission_status)


@shared_task(name=COPY_DELIVERY, acks_late=True)
def copy_delivery_task(delivery_id: int) -> None:
    copy_delivery(delivery_id)
