"""The console in a real browser: Debian's headless Chromium driven by Playwright.

One journey, as an admin would make it: log in, register a client by pasting its JWKS,
launch a Group export and watch its progress bar reach complete, open the manifest,
preview an NDJSON file (the resource text stays text), cancel a second export launched
through the form while its partitions wait for the (held) worker, and find all of it in
the audit trail. Screenshots go to BULKOPS_SCREENSHOT_DIR (README:
`BULKOPS_SCREENSHOT_DIR=docs/screenshots make test` refreshes docs/screenshots/).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.services import create_operator
from bulkops.celery import app as celery_app
from exports.models import ExportJob
from tests.accounts.conftest import ensure_role_groups
from tests.exports.conftest import store  # noqa: F401 - the linked patients and Group g1
from tests.smart import certified

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not CHROMIUM.exists():
    pytest.skip(
        "browser tests need Debian's chromium at /usr/bin/chromium (apt-get install chromium); "
        ".ci/run installs it in CI",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    # Playwright's sync API runs an event loop on this thread, and Django refuses ORM
    # calls from a thread with a running loop; the test's own ORM calls are synchronous.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE")
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("BULKOPS_SCREENSHOT_DIR") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def page(chromium: Any, live_server: Any) -> Iterator[Any]:
    context = chromium.new_context(
        viewport={"width": 1280, "height": 900}, base_url=live_server.url
    )
    context.set_default_timeout(15_000)
    browser_page = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        if dialog.type == "alert":  # an alert means page text ran as script
            pytest.fail(f"unexpected alert: {dialog.message}")
        dialog.accept()

    browser_page.on("dialog", on_dialog)
    # Anything the Content-Security-Policy blocked means a page relies on what the
    # policy forbids (inline script, eval, a <style> element): htmx would misbehave.
    blocked: list[str] = []
    browser_page.on(
        "console",
        lambda message: (
            blocked.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield browser_page
    context.close()
    assert blocked == []


def log_in(page: Any) -> None:
    ensure_role_groups()
    _, password = create_operator(username="ada", role="admin")
    page.goto("/accounts/login/")
    page.fill("input[name=login]", "ada")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/")


def launch_group_export(page: Any, types: str, *, submit: bool = True) -> None:
    """Fill the launch form for Cohort registry's Group/g1 export (and launch it)."""
    page.goto("/exports/new/")
    page.select_option("select[name=client]", label="Cohort registry")
    page.select_option("select[name=level]", "group")
    page.select_option("select[name=group_id]", "g1")
    page.fill("input[name=types]", types)
    if submit:
        page.click("button:text('Launch export')")
        sync_api.expect(page.locator("h1")).to_have_text("Group export of Cohort 1 g1")


# A gate per held worker thread: the task says when it holds its thread, then waits.
_gates: dict[str, tuple[threading.Event, threading.Event]] = {}


@celery_app.task(name="tests.browser.hold_worker_thread")
def hold_worker_thread(gate: str) -> None:
    started, release = _gates[gate]
    started.set()
    release.wait(timeout=120)


class HeldWorker:
    """Holds every thread of the test Celery worker with a waiting task, so tasks queued
    meanwhile wait their turn; every hold is released on exit, whatever happened."""

    def __init__(self, worker: Any) -> None:
        self.threads = worker.concurrency
        self.gates: list[str] = []

    def _hold(self) -> tuple[threading.Event, threading.Event]:
        gate = uuid.uuid4().hex
        _gates[gate] = (threading.Event(), threading.Event())
        self.gates.append(gate)
        hold_worker_thread.delay(gate)
        return _gates[gate]

    def __enter__(self) -> HeldWorker:
        for started, _ in [self._hold() for _ in range(self.threads)]:
            assert started.wait(timeout=30), "the test worker did not take the holding task"
        return self

    def hold_one_more(self) -> None:
        self._hold()

    def release_first(self) -> None:
        _gates[self.gates[0]][1].set()

    def __exit__(self, *exc: object) -> None:
        for gate in self.gates:
            _gates.pop(gate)[1].set()


def wait_until_claimed(job: ExportJob, timeout: float = 30) -> None:
    """Until the worker has taken every partition of `job` (it claims, then stops)."""
    deadline = time.monotonic() + timeout
    while job.partitions.filter(attempts=0).exists():
        assert time.monotonic() < deadline, "the worker never reached the job's partitions"
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_operator_journey(page, shots, store, rsa_key, celery_worker) -> None:  # noqa: F811
    expect = sync_api.expect
    log_in(page)
    expect(page.locator("h1")).to_have_text("Dashboard")

    # Register a client by pasting its public JWKS; check the keys first.
    page.goto("/clients/new/")
    page.fill("input[name=name]", "Cohort registry")
    # Its key's certificate runs out in 20 days: usable, and flagged on the dashboard.
    _, certified_jwk = certified(rsa_key, rsa_key.kid, timezone.now() + timedelta(days=20))
    page.fill("textarea[name=jwks]", json.dumps({"keys": [certified_jwk]}))
    page.click("text=Fetch and check keys")
    expect(page.locator("#jwks-check")).to_contain_text("usable")
    expect(page.locator("#jwks-check")).to_contain_text("2048 bits")
    # The checklist holds every R4 type; typing in its filter box narrows it.
    page.fill("#scope-type-filter", "medicationre")
    visible = page.locator("#scope-checklist label:visible")
    expect(visible).to_have_count(1)
    expect(visible).to_have_text("MedicationRequest")
    page.fill("#scope-type-filter", "")
    page.check("input[name=scope_types][value='*']")
    expect(page.locator("#scope-preview")).to_contain_text("system/*.read")
    page.screenshot(path=shots / "client-register.png", full_page=True)
    page.click("button:text('Register client')")
    expect(page.locator("h1")).to_have_text("Cohort registry")
    expect(page.locator(".flash")).to_contain_text("Registered Cohort registry")
    page.screenshot(path=shots / "client-detail.png", full_page=True)

    # Launch a Group export; the lint preview explains what is left out before launch.
    launch_group_export(page, "Patient,Observation,ValueSet", submit=False)
    page.click("text=Preview what it exports")
    lint = page.locator("#scope-lint")
    expect(lint).to_contain_text("2 resource types would be exported")
    expect(lint).to_contain_text("ValueSet was requested but is not in the Patient compartment")
    page.screenshot(path=shots / "export-launch.png", full_page=True)
    page.click("button:text('Launch export')")
    expect(page.locator("h1")).to_have_text("Group export of Cohort 1 g1")

    # The progress fragment polls itself until the job is complete.
    status = page.locator(".job-progress [data-status]")
    expect(status).to_have_text("completed", timeout=30_000)
    expect(page.locator(".job-progress [role=progressbar]").first).to_have_attribute(
        "aria-valuenow", "100"
    )
    expect(page.locator("#manifest")).to_contain_text("Observation")
    page.click("summary:text('Manifest JSON')")
    expect(page.locator("#manifest pre")).to_contain_text('"transactionTime"')
    page.screenshot(path=shots / "export-detail.png", full_page=True)

    # Preview the Observation file: resource text shows as text, never runs.
    page.locator("#manifest tr", has_text="Observation").get_by_role("link", name="Preview").click()
    expect(page.locator("table.ndjson")).to_contain_text("<script>alert('x')</script>")
    expect(page.locator("table.ndjson")).to_contain_text("Observation/p1-o0")
    # Search the whole file for one patient's observations.
    page.fill("input[name=q]", "subject=Patient/p2")
    page.click("button:text('Search')")
    expect(page.locator("#search-status")).to_contain_text("2 matches in the whole file")
    expect(page.locator("table.ndjson tbody tr")).to_have_count(2)
    page.screenshot(path=shots / "ndjson-preview.png", full_page=True)

    # Cancel a second job, launched through the form, while it is still running: the
    # worker's threads are held so its partitions wait in the queue until it is cancelled.
    with HeldWorker(celery_worker) as held:
        launch_group_export(page, "Patient,Observation")
        second = ExportJob.objects.order_by("-created_at").first()
        held.hold_one_more()  # queued behind the planning task, so it takes that thread next
        held.release_first()  # one thread plans the job (running), then waits again
        status = page.locator(".job-progress [data-status]")
        expect(status).to_have_text("running", timeout=30_000)
        page.click("button:text('Cancel export')")
        expect(status).to_have_text("cancelled")
    # Released, the worker reaches every partition of the cancelled job and exports nothing.
    second.refresh_from_db()
    assert second.status == "cancelled" and second.partitions_total >= 1
    wait_until_claimed(second)
    second.refresh_from_db()
    assert (second.status, second.partitions_done, second.resources_exported) == ("cancelled", 0, 0)
    assert not second.files.exists()

    page.goto("/exports/")
    page.screenshot(path=shots / "export-list.png", full_page=True)

    page.goto("/audit/")
    trail = page.locator("table")
    for action in (
        "client.registered",
        "export.kickoff",
        "export.cancelled",
        "client.keys_checked",
    ):
        expect(trail).to_contain_text(action)
    cancelled = trail.locator("tr", has_text="export.cancelled")
    expect(cancelled).to_have_count(1)
    expect(cancelled.locator(f"a[href='/exports/{second.uuid}/']")).to_have_count(1)
    page.screenshot(path=shots / "audit-trail.png", full_page=True)

    page.goto("/")
    expiring = page.locator("#expiring-keys tbody tr")
    expect(expiring).to_have_count(1)
    expect(expiring).to_contain_text("Cohort registry")
    expect(expiring).to_contain_text("expires soon")
    expect(expiring).to_contain_text("x5c certificate")
    page.screenshot(path=shots / "dashboard.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/exports/{ExportJob.objects.order_by('created_at').first().uuid}/")
    page.screenshot(path=shots / "export-detail-phone.png", full_page=True)

    # On a phone every page fits the screen's width: wide tables scroll inside their box,
    # and no resource type name is broken in the middle.
    first = ExportJob.objects.order_by("created_at").first()
    for path in (
        f"/exports/{first.uuid}/",
        f"/files/{first.files.get(resource_type='Observation').uuid}/",
    ):
        page.goto(path)
        broken = page.evaluate(
            "[...document.querySelectorAll('.type-name')].filter(e => {"
            " const r = document.createRange(); r.selectNodeContents(e);"
            " return new Set([...r.getClientRects()].map(c => Math.round(c.top))).size > 1;"
            "}).map(e => e.textContent)"
        )
        assert broken == [], f"{path}: {broken} break across lines on a 390px phone"
    for path in (
        "/",
        "/clients/",
        f"/clients/{first.client.client_id}/",
        "/exports/",
        "/exports/new/",
        f"/exports/{first.uuid}/",
        f"/files/{first.files.filter(resource_type='Observation').get().uuid}/",
        "/data/",
        "/audit/",
        "/operators/",
        f"/operators/{get_user_model().objects.get(username='ada').pk}/reset-password/",
        "/remotes/",
    ):
        assert_fits_a_phone(page, path)
    page.context.clear_cookies()  # the sign-in pages, as a stranger sees them
    for path in ("/accounts/login/", "/accounts/password/reset/", "/accounts/signup/"):
        assert_fits_a_phone(page, path)


@pytest.mark.django_db(transaction=True)
def test_operators_are_managed_and_times_shown_in_the_chosen_zone(page) -> None:
    """An admin adds an operator, changes their role and deactivates them; picks a time
    zone; the Operators pages and the settings page fit a phone."""
    expect = sync_api.expect
    log_in(page)
    page.goto("/operators/")
    page.click("text=Add an operator")
    page.fill("input[name=username]", "grace")
    page.select_option("select[name=role]", "auditor")
    page.click("button:text('Add operator')")
    expect(page.locator("#new-password")).to_contain_text("shown only this once")
    grace = get_user_model().objects.get(username="grace")
    page.goto(f"/operators/{grace.pk}/")
    page.select_option("select[name=role]", "operator")
    page.click("button:text('Change role')")
    expect(page.locator(".flash")).to_contain_text("grace is now operator.")
    page.click("button:text('Deactivate')")
    expect(page.locator("#operator-status")).to_contain_text("deactivated")

    page.click("#time-zone")
    page.select_option("select[name=time_zone]", "Australia/Sydney")
    page.click("button:text('Save')")
    expect(page.locator("#time-zone")).to_have_text("times in Australia/Sydney")

    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/operators/", "/operators/new/", f"/operators/{grace.pk}/", "/profile/"):
        assert_fits_a_phone(page, path)


def assert_fits_a_phone(page: Any, path: str) -> None:
    page.goto(path)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{path} is {overflow}px wider than a 390px phone screen"


@pytest.mark.django_db(transaction=True)
def test_api_docs_render_under_the_content_security_policy(page) -> None:
    """Swagger UI loads its start-up script from a URL (no inline script), so the docs
    page works with script-src 'self'; the page fixture fails on anything blocked."""
    log_in(page)
    page.goto("/api/docs/")
    sync_api.expect(page.locator(".swagger-ui .info")).to_contain_text("bulkops operator API")
    sync_api.expect(page.locator(".opblock").first).to_be_visible()
