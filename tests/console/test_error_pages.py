"""A refused or missing page stays inside the console: its layout and navigation, the
role that would open it, a way back; and the console has a favicon."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("role", "path", "needed"),
    [
        ("auditor", "/exports/new/", "This page needs the operator or admin role."),
        ("operator", "/audit/", "This page needs the auditor or admin role."),
        ("operator", "/clients/new/", "This page needs the admin role."),
    ],
)
def test_403_names_the_role_needed_inside_the_console(console_client, role, path, needed):
    response = console_client(role).get(path)
    page = response.content.decode()
    assert response.status_code == 403
    assert needed in page
    assert f"You are signed in as <strong>{role}-user</strong> with the {role} role." in page
    assert '<header class="topbar">' in page and 'href="/exports/"' in page


def test_404_is_inside_the_console(console_client):
    response = console_client("operator").get("/exports/00000000-0000-4000-8000-000000000000/")
    page = response.content.decode()
    assert response.status_code == 404
    assert '<section class="card" id="not-found">' in page and '<header class="topbar">' in page


def test_pages_carry_a_favicon(console_client):
    page = console_client("auditor").get("/").content.decode()
    assert '<link rel="icon" href="/static/favicon' in page
    assert finders.find("favicon.svg")
