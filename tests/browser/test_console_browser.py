"""The console in a real browser: Debian's headless Chromium driven by Playwright.

One journey, as an admin would make it: log in, register a client by pasting its JWKS,
launch a Group export and watch its progress bar reach complete, open the manifest,
preview an NDJSON file (the resource text stays text), cancel a second job, and find
all of it in the audit trail. Screenshots go to BULKOPS_SCREENSHOT_DIR (README:
`BULKOPS_SCREENSHOT_DIR=docs/screenshots make test` refreshes docs/screenshots/).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from accounts.services import create_operator
from exports.models import ExportJob
from tests.accounts.conftest import ensure_role_groups
from tests.exports.conftest import store  # noqa: F401 - the linked patients and Group g1

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


@pytest.mark.django_db(transaction=True)
def test_operator_journey(page, shots, store, rsa_key, celery_worker) -> None:  # noqa: F811
    expect = sync_api.expect
    log_in(page)
    expect(page.locator("h1")).to_have_text("Dashboard")

    # Register a client by pasting its public JWKS; check the keys first.
    page.goto("/clients/new/")
    page.fill("input[name=name]", "Cohort registry")
    page.fill("textarea[name=jwks]", json.dumps(rsa_key.jwks()))
    page.click("text=Fetch and check keys")
    expect(page.locator("#jwks-check")).to_contain_text("usable")
    expect(page.locator("#jwks-check")).to_contain_text("2048 bits")
    page.check("input[name=scope_types][value='*']")
    expect(page.locator("#scope-preview")).to_contain_text("system/*.read")
    page.screenshot(path=shots / "client-register.png", full_page=True)
    page.click("button:text('Register client')")
    expect(page.locator("h1")).to_have_text("Cohort registry")
    expect(page.locator(".flash")).to_contain_text("Registered Cohort registry")
    page.screenshot(path=shots / "client-detail.png", full_page=True)

    # Launch a Group export; the lint preview explains what is left out before launch.
    page.goto("/exports/new/")
    page.select_option("select[name=client]", label="Cohort registry")
    page.select_option("select[name=level]", "group")
    page.select_option("select[name=group_id]", "g1")
    page.fill("input[name=types]", "Patient,Observation,Practitioner")
    page.click("text=Preview what it exports")
    lint = page.locator("#scope-lint")
    expect(lint).to_contain_text("2 resource types would be exported")
    expect(lint).to_contain_text("Practitioner was requested but is not in the Patient compartment")
    page.screenshot(path=shots / "export-launch.png", full_page=True)
    page.click("button:text('Launch export')")
    expect(page.locator("h1")).to_have_text("Group export of Group/g1")

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
    page.screenshot(path=shots / "ndjson-preview.png", full_page=True)

    # Cancel a second job that is still running.
    client = ExportJob.objects.get().client
    second = ExportJob.objects.create(
        client=client,
        level="system",
        request_url="http://testserver/fhir/$export",
        transaction_time=timezone.now(),
        status=ExportJob.Status.RUNNING,
    )
    page.goto(f"/exports/{second.uuid}/")
    page.click("button:text('Cancel export')")
    expect(page.locator(".job-progress [data-status]")).to_have_text("cancelled")
    second.refresh_from_db()
    assert second.status == "cancelled"

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
    page.screenshot(path=shots / "audit-trail.png", full_page=True)

    page.goto("/")
    page.screenshot(path=shots / "dashboard.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/exports/{ExportJob.objects.order_by('created_at').first().uuid}/")
    page.screenshot(path=shots / "export-detail-phone.png", full_page=True)


@pytest.mark.django_db(transaction=True)
def test_api_docs_render_under_the_content_security_policy(page) -> None:
    """Swagger UI loads its start-up script from a URL (no inline script), so the docs
    page works with script-src 'self'; the page fixture fails on anything blocked."""
    log_in(page)
    page.goto("/api/docs/")
    sync_api.expect(page.locator(".swagger-ui .info")).to_contain_text("bulkops operator API")
    sync_api.expect(page.locator(".opblock").first).to_be_visible()
