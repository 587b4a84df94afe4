"""Passwords reset by email (through a real SMTP server on 127.0.0.1), by an admin on the
Operators page, and from a shell; each audited without the password or the link."""

from __future__ import annotations

import email
import json
import re
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from io import StringIO
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import AuditEvent
from accounts.services import create_operator
from bulkops.email_url import parse_email_url
from tests.processes import free_port

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Tall-Grass-Rolling-77"


class Mailbox:
    """aiosmtpd handler: keeps every message it is sent."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.original_content, policy=policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server(settings: Any) -> Iterator[Mailbox]:
    """A real SMTP server on a loopback port, and bulkops configured to send through it
    as BULKOPS_EMAIL_URL=smtp://127.0.0.1:<port> configures it."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    config = parse_email_url(f"smtp://127.0.0.1:{port}")
    settings.BULKOPS_PASSWORD_RESET_BY_EMAIL = config.sends_mail
    settings.EMAIL_BACKEND = config.backend
    settings.EMAIL_HOST, settings.EMAIL_PORT = config.host, config.port
    settings.DEFAULT_FROM_EMAIL = "bulkops@example.org"
    yield mailbox
    controller.stop()


def sign_in(client: Client, username: str, password: str) -> bool:
    response = client.post("/accounts/login/", {"login": username, "password": password})
    return response.status_code == 302 and response["Location"] == "/"


def test_password_reset_by_email_works_end_to_end(smtp_server):
    ada, old_password = create_operator(username="ada", role="operator", email="ada@example.org")
    browser = Client()
    assert b"Forgot your password?" in browser.get("/accounts/login/").content

    asked = browser.post("/accounts/password/reset/", {"email": "ada@example.org"})
    assert asked.status_code == 302
    assert asked["Location"] == "/accounts/password/reset/done/"
    assert "link to choose a new password is on its way" in browser.get(asked["Location"]).text

    [(sender, recipients, message)] = smtp_server.messages
    assert (sender, recipients) == ("bulkops@example.org", ["ada@example.org"])
    assert message["Subject"].startswith("[bulkops] ")
    body = message.get_body(("plain",)).get_content()
    link = re.search(r"http://testserver(/accounts/password/reset/key/\S+/)", body)
    assert link is not None, body
    key = link.group(1).rstrip("/").rsplit("/", 1)[1]

    # allauth keeps the key in the session and shows the form at a URL without it.
    form_page = browser.get(link.group(1), follow=True)
    assert b'name="password1"' in form_page.content
    form_url = form_page.redirect_chain[-1][0]
    chosen = browser.post(form_url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert chosen.status_code == 302
    assert chosen["Location"] == "/accounts/password/reset/key/done/"

    assert sign_in(Client(), "ada", NEW_PASSWORD)
    assert not sign_in(Client(), "ada", old_password)
    event = AuditEvent.objects.get(action="operator.password_reset")
    assert (event.actor_type, event.actor) == ("operator", "ada")
    assert event.details == {"username": "ada", "via": "email link"}
    trail = json.dumps(list(AuditEvent.objects.values("actor", "reason", "details")))
    assert key not in trail and NEW_PASSWORD not in trail

    # The link is spent.
    again = browser.get(link.group(1), follow=True)
    assert b'name="password1"' not in again.content


def test_unknown_addresses_get_the_same_answer_and_no_mail(smtp_server):
    create_operator(username="ada", role="operator", email="ada@example.org")
    create_operator(username="bob", role="operator")  # no email address at all
    answers = [
        Client().post("/accounts/password/reset/", {"email": address})
        for address in ("ada@example.org", "bob@example.org", "nobody@example.org")
    ]
    assert {(a.status_code, a["Location"]) for a in answers} == {
        (302, "/accounts/password/reset/done/")
    }
    assert [recipients for _, recipients, _ in smtp_server.messages] == [["ada@example.org"]]


def test_a_mail_server_that_is_down_gets_the_same_answer_not_a_500(settings, caplog):
    create_operator(username="ada", role="operator", email="ada@example.org")
    config = parse_email_url(f"smtp://127.0.0.1:{free_port()}")  # nothing listens there
    settings.BULKOPS_PASSWORD_RESET_BY_EMAIL = True
    settings.EMAIL_BACKEND, settings.EMAIL_HOST = config.backend, config.host
    settings.EMAIL_PORT = config.port
    answer = Client().post("/accounts/password/reset/", {"email": "ada@example.org"})
    assert (answer.status_code, answer["Location"]) == (302, "/accounts/password/reset/done/")
    assert "password reset mail not sent" in caplog.text


# --- An admin resets an operator's password --------------------------------------------


def sessions_of(user: Any) -> list[Session]:
    return [s for s in Session.objects.all() if s.get_decoded().get(SESSION_KEY) == str(user.pk)]


def test_admin_resets_a_password_shown_once_and_ends_the_operators_sessions(console_client):
    olivia, old_password = create_operator(username="olivia", role="operator")
    her_browser = Client()
    assert sign_in(her_browser, "olivia", old_password)
    assert her_browser.get("/").status_code == 200
    admin = console_client("admin")

    operators = admin.get("/operators/").content.decode()
    reset_url = f"/operators/{olivia.pk}/reset-password/"
    assert f'href="{reset_url}"' in operators
    confirm = admin.get(reset_url)
    assert b"Reset the password" in confirm.content and b'method="post"' in confirm.content
    assert sign_in(Client(), "olivia", old_password)  # asking changes nothing

    answer = admin.post(reset_url)
    assert answer.status_code == 200
    assert "no-store" in answer["Cache-Control"]
    new_password = re.search(r"<code>([^<]+)</code>", answer.content.decode()).group(1)
    assert sessions_of(olivia) == []
    assert her_browser.get("/").status_code == 302  # signed out
    assert not sign_in(Client(), "olivia", old_password)
    assert sign_in(Client(), "olivia", new_password)
    assert new_password.encode() not in admin.get("/operators/").content  # shown once

    event = AuditEvent.objects.get(action="operator.password_reset")
    assert (event.actor_type, event.actor) == ("operator", "admin-user")
    # Two sessions: the browser signed in above and the sign-in check after "asking".
    assert event.details == {"username": "olivia", "via": "admin", "sessions_ended": 2}
    assert new_password not in json.dumps(list(AuditEvent.objects.values("details", "reason")))


@pytest.mark.parametrize("role", ["operator", "auditor"])
def test_only_admins_may_reset_passwords(console_client, role):
    olivia, password = create_operator(username="olivia", role="operator")
    browser = console_client(role)
    reset_url = f"/operators/{olivia.pk}/reset-password/"
    assert browser.get(reset_url).status_code == 403
    assert browser.post(reset_url).status_code == 403
    assert sign_in(Client(), "olivia", password)
    assert not AuditEvent.objects.filter(action="operator.password_reset").exists()


def test_resetting_an_unknown_operator_is_404(console_client):
    assert console_client("admin").post("/operators/999999/reset-password/").status_code == 404


def test_reset_password_command_prints_a_new_password_once_and_audits(console_client):
    olivia, old_password = create_operator(username="olivia", role="operator")
    out = StringIO()
    call_command("reset_password", "olivia", stdout=out)
    new_password = out.getvalue().strip().rsplit(" ", 1)[1]
    assert sign_in(Client(), "olivia", new_password)
    assert not sign_in(Client(), "olivia", old_password)
    event = AuditEvent.objects.get(action="operator.password_reset")
    assert (event.actor_type, event.actor, event.details["via"]) == ("system", "system", "admin")
    with pytest.raises(CommandError, match="No operator is called 'nobody'"):
        call_command("reset_password", "nobody")
