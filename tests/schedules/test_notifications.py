"""Notifications: a signed webhook to a real receiver on 127.0.0.1, tried again with
backoff when it fails; email through a real SMTP server; failures on the dashboard."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import transaction

from accounts.models import AuditEvent
from exports.partitions import fail_export
from schedules.models import ExportSchedule, Notification
from tests.accounts.test_password_reset import smtp_server  # noqa: F401 - fixture
from tests.schedules.conftest import schedule_form, wait_finished

SECRET = "whsec-4f1d-signing-key"


@dataclass
class Receiver:
    """A webhook receiver: answers the statuses queued in `answers` (then 200)."""

    url: str
    answers: list[int]
    calls: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    settings.BULKOPS_ALLOW_PRIVATE_FETCH = True  # the receiver is on 127.0.0.1
    settings.BULKOPS_NOTIFY_RETRY_DELAY = 1
    state = Receiver(url="", answers=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.calls.append({"headers": dict(self.headers), "body": body, "at": time.time()})
            self.send_response(state.answers.pop(0) if state.answers else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/bulkops?token=path-secret"
    yield state
    server.shutdown()
    server.server_close()


def wait_for(predicate, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def signed_schedule(browser, url: str) -> ExportSchedule:
    browser.post(
        "/schedules/new/", schedule_form(notify_webhook_url=url, notify_webhook_secret=SECRET)
    )
    return ExportSchedule.objects.get()


@pytest.mark.django_db(transaction=True)
def test_webhook_is_signed_and_retried_with_backoff_until_delivered(
    console_client, store, celery_worker, receiver
) -> None:
    receiver.answers = [500, 503]
    browser = console_client("operator")
    schedule = signed_schedule(browser, receiver.url)
    browser.post(f"/schedules/{schedule.uuid}/run/")
    job = wait_finished(schedule.runs.get().job)
    wait_for(lambda: Notification.objects.filter(status="sent").exists())

    note = Notification.objects.get()
    assert (note.event, note.attempts) == ("export.completed", 3)
    assert note.destination == f"http://127.0.0.1:{receiver.url.split(':')[2].split('/')[0]}"
    assert len(receiver.calls) == 3
    gaps = [b["at"] - a["at"] for a, b in zip(receiver.calls, receiver.calls[1:], strict=False)]
    assert gaps[0] >= 0.9 and gaps[1] >= 1.9  # 1 s, then 2 s: exponential
    deliveries = {call["headers"]["X-Bulkops-Delivery"] for call in receiver.calls}
    assert deliveries == {str(note.uuid)}
    for call in receiver.calls:
        timestamp = call["headers"]["X-Bulkops-Timestamp"]
        expected = hmac.new(
            SECRET.encode(), f"{timestamp}.".encode() + call["body"], hashlib.sha256
        ).hexdigest()
        assert hmac.compare_digest(call["headers"]["X-Bulkops-Signature"], f"sha256={expected}")
        assert abs(int(timestamp) - call["at"]) < 5
    body = json.loads(receiver.calls[-1]["body"])
    assert body["event"] == "export.completed"
    assert body["job"]["id"] == str(job.uuid)
    assert body["job"]["resources"] == 3
    assert body["schedule"]["name"] == "nightly"


@pytest.mark.django_db(transaction=True)
def test_a_tampered_body_does_not_verify(console_client, store, celery_worker, receiver) -> None:
    browser = console_client("operator")
    schedule = signed_schedule(browser, receiver.url)
    browser.post(f"/schedules/{schedule.uuid}/run/")
    wait_for(lambda: Notification.objects.filter(status="sent").exists())
    call = receiver.calls[0]
    timestamp = call["headers"]["X-Bulkops-Timestamp"]
    tampered = call["body"].replace(b'"completed"', b'"failed"')
    forged = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + tampered, hashlib.sha256)
    assert call["headers"]["X-Bulkops-Signature"] != f"sha256={forged.hexdigest()}"


@pytest.mark.django_db(transaction=True)
def test_a_webhook_that_keeps_failing_is_listed_on_the_dashboard_without_secrets(
    console_client, store, celery_worker, receiver, settings, caplog
) -> None:
    settings.BULKOPS_NOTIFY_RETRIES = 1
    receiver.answers = [500, 500]
    browser = console_client("operator")
    schedule = signed_schedule(browser, receiver.url)
    browser.post(f"/schedules/{schedule.uuid}/run/")
    wait_for(lambda: Notification.objects.filter(status="failed").exists())

    note = Notification.objects.get()
    assert note.attempts == 2 and note.error == "the receiver answered HTTP 500"
    dashboard = browser.get("/").content.decode()
    section = dashboard[dashboard.index('id="notification-failures"') :]
    assert "the receiver answered HTTP 500" in section[: section.index("</section>")]
    assert "nightly" in section[: section.index("</section>")]
    audit = json.dumps(list(AuditEvent.objects.values("actor", "reason", "details")))
    for where in (dashboard, audit, caplog.text, json.dumps(note.payload)):
        assert SECRET not in where and "path-secret" not in where


@pytest.mark.django_db(transaction=True)
def test_failed_exports_are_emailed_to_the_configured_address(
    smtp_server,  # noqa: F811 - fixture
    console_client,
    store,
    celery_worker,
    settings,
) -> None:
    settings.BULKOPS_SENDS_EMAIL = True
    settings.BULKOPS_NOTIFY_EMAIL = ["ops@example.org"]
    browser = console_client("operator")
    browser.post("/schedules/new/", schedule_form(notify_email="partner@example.org"))
    schedule = ExportSchedule.objects.get()
    with transaction.atomic():
        browser.post(f"/schedules/{schedule.uuid}/run/")
        fail_export(schedule.runs.get().job.pk, "The storage was unavailable.")
    wait_for(lambda: Notification.objects.filter(status="sent").count() == 2)

    assert sorted(r for _, recipients, _ in smtp_server.messages for r in recipients) == [
        "ops@example.org",
        "partner@example.org",
    ]
    _, _, message = smtp_server.messages[0]
    assert message["Subject"] == "[bulkops] Export failed: nightly"
    assert "failure_reason: The storage was unavailable." in message.get_content()


@pytest.mark.django_db
def test_without_a_mail_server_no_email_is_attempted(console_client, store, settings) -> None:
    settings.BULKOPS_SENDS_EMAIL = False
    settings.BULKOPS_NOTIFY_EMAIL = ["ops@example.org"]
    browser = console_client("operator")
    browser.post("/schedules/new/", schedule_form(notify_email="partner@example.org"))
    schedule = ExportSchedule.objects.get()
    browser.post(f"/schedules/{schedule.uuid}/run/")
    fail_export(schedule.runs.get().job.pk, "x")
    assert not Notification.objects.exists()
