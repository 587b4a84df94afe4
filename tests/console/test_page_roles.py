"""Every console page against every role: who gets the page, who gets 403, and
anonymous visitors go to the login page."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from accounts.services import create_operator, register_client
from exports.models import ExportJob
from schedules.models import ExportSchedule

pytestmark = pytest.mark.django_db

READ_ALL = {"admin", "operator", "auditor"}
ADMIN = {"admin"}
AUDIT = {"admin", "auditor"}
RUN = {"admin", "operator"}


@pytest.fixture
def urls(store, rsa_key) -> dict[str, set[str]]:
    client = register_client(name="Lab", jwks=rsa_key.jwks(), scopes="system/*.read")
    job = ExportJob.objects.create(
        client=client, level="system", request_url="x", transaction_time=timezone.now()
    )
    cid = client.client_id
    olivia, _ = create_operator(username="olivia", role="operator")
    schedule = ExportSchedule.objects.create(name="nightly", level="system", cron="0 2 * * *")
    return {
        "/": READ_ALL,
        "/running/": READ_ALL,
        "/clients/": READ_ALL,
        f"/clients/{cid}/": READ_ALL,
        "/clients/new/": ADMIN,
        f"/clients/{cid}/edit/": ADMIN,
        "/exports/": READ_ALL,
        f"/exports/{job.uuid}/": READ_ALL,
        f"/exports/{job.uuid}/progress/": READ_ALL,
        "/exports/new/": RUN,
        "/data/": READ_ALL,
        "/audit/": AUDIT,
        "/tokens/": READ_ALL,
        "/audit/export.csv": AUDIT,
        "/operators/": ADMIN,
        "/operators/new/": ADMIN,
        f"/operators/{olivia.pk}/": ADMIN,
        f"/operators/{olivia.pk}/reset-password/": ADMIN,
        "/profile/": READ_ALL,
        "/schedules/": READ_ALL,
        f"/schedules/{schedule.uuid}/": READ_ALL,
        "/schedules/new/": RUN,
        f"/schedules/{schedule.uuid}/edit/": RUN,
    }


@pytest.mark.parametrize("role", ["admin", "operator", "auditor", None])
def test_each_page_answers_each_role(console_client, urls, role) -> None:
    browser = console_client(role)
    for url, allowed in urls.items():
        expected = 200 if role in allowed else 403
        assert browser.get(url).status_code == expected, (url, role)


def test_anonymous_visitors_are_sent_to_login(urls) -> None:
    for url in urls:
        response = Client().get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/"), url


def test_every_page_names_the_time_zone_of_its_times(console_client, urls) -> None:
    """Fragments (htmx) have no page around them: the page they refresh names it. The
    CSV download is not a page."""
    browser = console_client("admin")
    for url in urls:
        response = browser.get(url)
        page = "" if response.streaming else response.content.decode()
        if "<html" in page:
            assert 'id="time-zone"' in page and "times in UTC" in page, url


@pytest.mark.parametrize("role", ["auditor", None])
def test_schedule_actions_are_refused_to_readers(console_client, urls, role) -> None:
    """Pause, resume, run now and delete are POSTs: only admins and operators."""
    schedule = ExportSchedule.objects.get()
    browser = console_client(role)
    for action in ("pause", "resume", "run", "delete"):
        assert browser.post(f"/schedules/{schedule.uuid}/{action}/").status_code == 403, action
    assert ExportSchedule.objects.filter(pk=schedule.pk, paused=False).exists()
    assert not schedule.runs.exists()
