"""Hostile strings in a real browser: resource text in the NDJSON preview, a client's
name, the unverified `iss` of a refused token request, and a reflected filter value
are shown as text on every page that displays them, and never run (no dialog, no
global set, nothing the Content-Security-Policy had to block)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.utils import timezone

from accounts.services import register_client
from exports.models import ExportFile, ExportJob
from exports.storage import get_storage
from tests.browser.test_console_browser import chromium, log_in, page  # noqa: F401
from tests.smart import post_token, sign_assertion

PAYLOADS = [
    "<script>window.__xss = 'script'</script>",
    "<img src=x onerror=\"window.__xss = 'img'; alert(1)\">",
    '"><svg onload="window.__xss = \'svg\'">',
    "</pre></td><iframe srcdoc=\"<script>parent.__xss = 'iframe'</script>\"></iframe>",
    "javascript:window.__xss = 'href'",
]
NAME = PAYLOADS[1]


def hostile_export(client: Any) -> ExportFile:
    """A finished job whose Observation file carries every payload in resource text."""
    job = ExportJob.objects.create(
        client=client,
        level="system",
        request_url="http://testserver/fhir/$export",
        transaction_time=timezone.now(),
        status=ExportJob.Status.COMPLETED,
        completed_at=timezone.now(),
    )
    lines = [
        json.dumps(
            {
                "resourceType": "Observation",
                "id": f"o{n}",
                "note": [{"text": payload}],
                "code": {"text": payload},
            }
        )
        for n, payload in enumerate(PAYLOADS)
    ]
    data = ("\n".join(lines) + "\n").encode()
    file = ExportFile.objects.create(
        job=job,
        kind=ExportFile.Kind.OUTPUT,
        resource_type="Observation",
        storage_key=f"{job.uuid}/Observation.ndjson",
        resource_count=len(lines),
        size_bytes=len(data),
    )
    with get_storage().open_writer(file.storage_key) as writer:
        writer.write(data)
    return file


@pytest.mark.django_db(transaction=True)
def test_hostile_strings_are_shown_as_text_and_never_run(page, rsa_key) -> None:  # noqa: F811
    expect = pytest.importorskip("playwright.sync_api").expect
    client = register_client(name=NAME, jwks=rsa_key.jwks(), scopes="system/*.read")
    file = hostile_export(client)
    for payload in PAYLOADS[:3]:  # refused token requests name an unverified iss
        assert post_token(sign_assertion(rsa_key, payload)).status_code == 401
    log_in(page)

    as_json = [json.dumps(payload)[1:-1] for payload in PAYLOADS]  # the preview shows JSON
    visits = {
        f"/files/{file.uuid}/": as_json,
        f"/files/{file.uuid}/?q={PAYLOADS[0]}": [PAYLOADS[0]],
        "/audit/": PAYLOADS[:3],
        f"/audit/?actor={PAYLOADS[2]}": [],
        "/clients/": [NAME],
        f"/clients/{client.client_id}/": [NAME],
        f"/exports/{file.job.uuid}/": [],
        "/exports/": [],
        "/": [],
    }
    for url, shown in visits.items():
        page.goto(url)
        page.wait_for_load_state("load")
        assert page.evaluate("typeof window.__xss") == "undefined", url
        assert page.locator("iframe, main svg[onload], img[onerror]").count() == 0, url
        for text in shown:
            expect(page.locator("main")).to_contain_text(text)
