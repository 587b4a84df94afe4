"""Schedules through the operator API: the console's checks, its services, its audit."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent
from schedules.models import ExportSchedule
from tests.exports.conftest import store  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db

NIGHTLY = {
    "name": "nightly",
    "level": "system",
    "types": ["Patient", "Observation"],
    "cron": "30 2 * * *",
    "timezone": "America/New_York",
    "incremental": True,
    "retention_hours": 48,
    "notify_webhook_url": "https://hooks.example.org/bulkops/abc",
    "notify_webhook_secret": "api-secret",
}


def test_create_read_pause_run_and_delete(api_as, store) -> None:  # noqa: F811
    api = api_as("operator")
    created = api.post("/api/v1/schedules/create", NIGHTLY)
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["cron"] == "30 2 * * *" and body["timezone"] == "America/New_York"
    assert body["retention"] == 48 * 3600 and body["incremental"] is True
    assert body["notify_webhook"] == "https://hooks.example.org"
    assert "notify_webhook_secret" not in body and "api-secret" not in created.content.decode()
    assert body["next_run_at"].endswith(("06:30:00Z", "07:30:00Z"))  # 02:30 EDT or EST
    path = f"/api/v1/schedules/{body['uuid']}"

    assert api.post(f"{path}/pause").json()["paused"] is True
    assert api.post(f"{path}/resume").json()["paused"] is False
    run = api.post(f"{path}/run")
    assert run.status_code == 201
    assert run.json()["trigger"] == "manual" and run.json()["since"] is None
    again = api.post(f"{path}/run")
    assert again.status_code == 409
    assert again.json()["detail"] == "The previous run is still exporting."
    runs = api.get(path).json()["runs"]
    assert [r["status"] for r in runs] == ["not started", "accepted"]

    assert api.post(f"{path}/delete").status_code == 204
    assert not ExportSchedule.objects.exists()
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"schedule.created", "schedule.paused", "schedule.resumed", "schedule.run"} <= actions
    assert "schedule.deleted" in actions


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"cron": "30 2 * *"}, "cron", "five fields"),
        ({"timezone": "Nowhere/Land"}, "timezone", "IANA"),
        ({"types": ["Nope"]}, "non_field_errors", "Nope"),
        ({"client_id": "no-such-client"}, "client_id", "valid choice"),
        ({"notify_webhook_secret": ""}, "notify_webhook_secret", "secret"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api_as, store, changes, field, words) -> None:  # noqa: F811
    response = api_as("admin").post("/api/v1/schedules/create", {**NIGHTLY, **changes})
    assert response.status_code == 400
    assert words in " ".join(response.json()["errors"][field])
    assert not ExportSchedule.objects.exists()


def test_update_keeps_the_secret_unless_given(api_as, store) -> None:  # noqa: F811
    api = api_as("admin")
    uuid = api.post("/api/v1/schedules/create", NIGHTLY).json()["uuid"]
    secret = ExportSchedule.objects.get().notify_webhook_secret
    changed = {**NIGHTLY, "cron": "0 4 * * sun"}
    del changed["notify_webhook_secret"]
    response = api.post(f"/api/v1/schedules/{uuid}/update", changed)
    assert response.status_code == 200, response.content
    schedule = ExportSchedule.objects.get()
    assert schedule.cron == "0 4 * * sun" and schedule.notify_webhook_secret == secret
