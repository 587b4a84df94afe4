from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.audit import record_event
from accounts.services import create_operator

pytestmark = pytest.mark.django_db


def test_dashboard_sends_anonymous_visitors_to_login():
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_login_page_asks_for_username_and_password():
    response = Client().get("/accounts/login/")
    assert response.status_code == 200
    assert b'name="login"' in response.content
    assert b'name="password"' in response.content
    assert b"csrfmiddlewaretoken" in response.content


def test_operator_logs_in_with_generated_password_and_sees_dashboard():
    _, password = create_operator(username="olivia", role="operator")
    client = Client(enforce_csrf_checks=True)
    page = client.get("/accounts/login/")
    token = page.cookies["csrftoken"].value
    response = client.post(
        "/accounts/login/",
        {"login": "olivia", "password": password, "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    assert response["Location"] == "/"
    dashboard = client.get("/")
    assert dashboard.status_code == 200
    assert b"Dashboard" in dashboard.content
    assert b"olivia" in dashboard.content


def test_wrong_password_is_refused_with_a_message_on_the_form():
    create_operator(username="olivia", role="operator")
    response = Client().post("/accounts/login/", {"login": "olivia", "password": "nope"})
    assert response.status_code == 200
    assert b"not correct" in response.content
    assert "_auth_user_id" not in Client().session


def test_login_without_csrf_token_is_rejected():
    _, password = create_operator(username="olivia", role="operator")
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"login": "olivia", "password": password})
    assert response.status_code == 403


def test_signup_is_closed():
    client = Client()
    page = client.get("/accounts/signup/")
    assert b"Sign Up Closed" in page.content
    client.post(
        "/accounts/signup/",
        {"username": "mallory", "password1": "Xk2!long-pass", "password2": "Xk2!long-pass"},
    )
    assert not get_user_model().objects.filter(username="mallory").exists()


@pytest.mark.parametrize(
    ("role", "path", "status"),
    [
        ("admin", "/", 200),
        ("operator", "/", 200),
        ("auditor", "/", 200),
        (None, "/", 403),
        ("admin", "/audit/", 200),
        ("auditor", "/audit/", 200),
        ("operator", "/audit/", 403),
        (None, "/audit/", 403),
        ("admin", "/operators/", 200),
        ("operator", "/operators/", 403),
        ("auditor", "/operators/", 403),
    ],
)
def test_console_pages_check_role(console_client, role, path, status):
    assert console_client(role).get(path).status_code == status


def test_navigation_shows_only_pages_the_role_may_open(console_client):
    auditor_page = console_client("auditor").get("/").content
    assert b'href="/audit/"' in auditor_page
    assert b'href="/operators/"' not in auditor_page
    operator_page = console_client("operator").get("/").content
    assert b'href="/audit/"' not in operator_page


def test_audit_trail_lists_events_and_escapes_untrusted_text(console_client):
    create_operator(username="olivia", role="operator")
    # A rejected token request records the attacker-chosen `iss` as the actor.
    record_event(
        actor_type="client",
        actor="<script>alert(1)</script>",
        action="token.issue",
        outcome="failure",
        reason="unknown client",
    )
    page = console_client("auditor").get("/audit/").content.decode()
    assert "operator.created" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)</script>" not in page


def test_logout_needs_a_post():
    user, _ = create_operator(username="olivia", role="operator")
    client = Client()
    client.force_login(user)
    client.get("/accounts/logout/")
    assert client.get("/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302
