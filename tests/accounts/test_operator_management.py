"""Admins manage operators in the console, the operator API and `manage.py operator`:
create, change role, deactivate, reactivate, reset a password; every change audited in
words; deactivation ends a live session and a live API token at once; the last active
admin stays. The operator API's side: tests/api/test_operators_api.py."""

from __future__ import annotations

import json
import re
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import AuditEvent
from accounts.services import create_api_token, create_operator
from tests.accounts.conftest import ensure_role_groups

pytestmark = pytest.mark.django_db

LAST_ADMIN = "is the last active admin; make another operator an admin first."


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def signed_in(username: str, password: str) -> Client:
    """A browser that signed in through the login form: a real session cookie."""
    browser = Client()
    response = browser.post("/accounts/login/", {"login": username, "password": password})
    assert (response.status_code, response["Location"]) == (302, "/")
    return browser


def token_call(raw: str) -> int:
    headers = {"Authorization": f"Token {raw}"}
    return Client().get("/api/v1/exports/", headers=headers).status_code


def user(username: str) -> Any:
    return get_user_model().objects.get(username=username)


def said(browser: Client) -> list[str]:
    """What the audit trail says events did (its "What" column), newest first."""
    page = browser.get("/audit/").content.decode()
    return [text for text in re.findall(r'<td class="about">([^<]*)</td>', page) if text]


# --- Console -------------------------------------------------------------------------


def test_admin_adds_an_operator_whose_password_is_shown_once(console_client):
    admin = console_client("admin")
    assert b'href="/operators/new/"' in admin.get("/operators/").content

    answer = admin.post("/operators/new/", {"username": "ada", "role": "auditor", "email": ""})
    assert answer.status_code == 200
    assert "no-store" in answer["Cache-Control"]
    password = re.search(r"<code>([^<]+)</code>", answer.content.decode()).group(1)
    ada = signed_in("ada", password)
    assert ada.get("/audit/").status_code == 200  # an auditor
    assert ada.get("/exports/new/").status_code == 403

    listed = admin.get("/operators/").content.decode()
    assert "ada" in listed and "auditor" in listed and password not in listed
    assert said(admin)[0] == "created operator ada (auditor)"
    event = AuditEvent.objects.get(action="operator.created", details__username="ada")
    assert (event.actor_type, event.actor) == ("operator", "admin-user")
    assert password not in json.dumps(list(AuditEvent.objects.values("details", "reason")))


def test_a_refused_username_is_said_next_to_the_field_and_changes_nothing(console_client):
    admin = console_client("admin")
    before = get_user_model().objects.count()
    answer = admin.post("/operators/new/", {"username": "<b>x</b>", "role": "operator"})
    assert answer.status_code == 400
    page = answer.content.decode()
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page  # escaped
    assert 'id="field-username"' in page and "Enter a valid username" in page
    taken = admin.post("/operators/new/", {"username": "admin-user", "role": "operator"})
    assert "A user with that username already exists." in taken.content.decode()
    assert get_user_model().objects.count() == before
    assert not AuditEvent.objects.filter(action="operator.created", actor="admin-user").exists()


def test_deactivation_ends_a_live_session_and_a_live_api_token_at_once(console_client):
    olivia, password = create_operator(username="olivia", role="operator")
    her_browser = signed_in("olivia", password)
    assert her_browser.get("/exports/").status_code == 200
    token = create_api_token(user=olivia, name="nightly").raw
    assert token_call(token) == 200
    admin = console_client("admin")

    answer = admin.post(f"/operators/{olivia.pk}/deactivate/", follow=True)

    refused = her_browser.get("/exports/")
    assert (refused.status_code, refused["Location"]) == (302, "/accounts/login/?next=/exports/")
    assert token_call(token) == 401
    login = Client().post("/accounts/login/", {"login": "olivia", "password": password})
    assert "_auth_user_id" not in login.client.session
    # Reactivated, she signs in again, but the old cookie and token stay dead.
    admin.post(f"/operators/{olivia.pk}/reactivate/")
    assert her_browser.get("/exports/").status_code == 302
    assert token_call(token) == 401
    assert signed_in("olivia", password).get("/exports/").status_code == 200

    assert "olivia is deactivated: 1 session ended, 1 API token revoked." in answer.text
    assert said(admin)[:2] == [
        "reactivated operator olivia",
        "deactivated operator olivia: 1 session ended, 1 API token revoked",
    ]


def test_admin_changes_a_role_which_applies_to_the_next_request(console_client):
    olivia, _ = create_operator(username="olivia", role="operator")
    token = create_api_token(user=olivia, name="nightly").raw

    def launch() -> int:
        headers = {"Authorization": f"Token {token}"}
        empty = Client().post("/api/v1/exports/launch", {}, "application/json", headers=headers)
        return empty.status_code

    assert launch() == 400  # may launch; the empty body is refused
    admin = console_client("admin")
    answer = admin.post(f"/operators/{olivia.pk}/role/", {"role": "auditor"}, follow=True)
    assert "olivia is now auditor." in answer.text
    assert 'id="operator-role">auditor<' in answer.text
    assert launch() == 403
    assert said(admin)[0] == "changed the role of olivia from operator to auditor"


def test_the_operator_page_shows_role_status_sign_in_and_tokens(console_client):
    olivia, password = create_operator(username="olivia", role="operator")
    signed_in("olivia", password)
    create_api_token(user=olivia, name="nightly <job>")
    admin = console_client("admin")
    row = re.search(r"<tr>\s*<td><a[^>]*>olivia</a>.*?</tr>", admin.get("/operators/").text, re.S)
    cells = re.findall(r"<td>(.*?)</td>", row.group(0), re.S)
    assert cells[1:3] == ["operator", "active"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", cells[3])  # last sign-in
    assert cells[4] == "1"  # active API tokens
    page = admin.get(f"/operators/{olivia.pk}/").text
    assert "nightly &lt;job&gt;" in page and "nightly <job>" not in page


def test_the_last_active_admin_cannot_be_deactivated_or_demoted_in_the_console(console_client):
    ensure_role_groups()
    grace, _ = create_operator(username="grace", role="admin")
    admin = console_client("admin")  # admin-user, the second admin
    admin.post(f"/operators/{grace.pk}/deactivate/")
    assert not user("grace").is_active

    answer = admin.post(f"/operators/{user('admin-user').pk}/role/", {"role": "auditor"})
    assert LAST_ADMIN in admin.get(answer["Location"]).text
    assert user("admin-user").groups.get().name == "admin"
    # Nor by themselves, last or not.
    grace.is_active = True
    grace.save()
    answer = admin.post(f"/operators/{user('admin-user').pk}/deactivate/", follow=True)
    assert "You cannot deactivate yourself; another admin can." in answer.text
    assert user("admin-user").is_active
    assert not AuditEvent.objects.filter(details__username="admin-user").exclude(
        action="operator.created"
    )


@pytest.mark.parametrize("role", ["operator", "auditor", None])
def test_only_admins_manage_operators(console_client, role):
    olivia, _ = create_operator(username="olivia", role="operator")
    browser = console_client(role)
    for path, body in (
        ("/operators/new/", {"username": "eve", "role": "admin"}),
        (f"/operators/{olivia.pk}/role/", {"role": "admin"}),
        (f"/operators/{olivia.pk}/deactivate/", {}),
    ):
        assert browser.post(path, body).status_code == 403, path
    assert not get_user_model().objects.filter(username="eve").exists()
    assert user("olivia").is_active and user("olivia").groups.get().name == "operator"


# --- manage.py operator --------------------------------------------------------------


def operator_command(*args: str) -> str:
    out = StringIO()
    call_command("operator", *args, stdout=out)
    return out.getvalue()


def test_the_operator_command_does_what_the_console_does():
    ensure_role_groups()
    created = operator_command("create", "ada", "--role", "admin")
    password = re.search(r"Password \(shown once\): (\S+)", created).group(1)
    operator_command("create", "bob", "--role", "operator", "--email", "bob@example.org")
    signed_in("bob", re.search(r"once\): (\S+)", operator_command("reset-password", "bob"))[1])
    assert operator_command("set-role", "bob", "auditor") == "'bob' is now auditor.\n"
    assert operator_command("deactivate", "bob") == (
        "Deactivated 'bob': 1 session ended, 0 API tokens revoked.\n"
    )
    lines = operator_command("list").splitlines()
    assert lines[0].split() == ["USERNAME", "ROLE", "STATUS", "LAST", "SIGN-IN", "API", "TOKENS"]
    assert lines[1].split() == ["ada", "admin", "active", "never", "0"]
    assert lines[2].split()[:3] == ["bob", "auditor", "deactivated"]
    assert "may sign in again" in operator_command("reactivate", "bob")
    assert signed_in("ada", password)
    system = AuditEvent.objects.filter(actor_type="system").values_list("action", flat=True)
    assert sorted(system) == [
        "operator.created",
        "operator.created",
        "operator.deactivated",
        "operator.password_reset",
        "operator.reactivated",
        "operator.role_changed",
    ]


def test_the_operator_command_keeps_the_last_admin_and_names_unknown_operators():
    ensure_role_groups()
    operator_command("create", "ada", "--role", "admin")
    with pytest.raises(CommandError, match=f"ada {LAST_ADMIN}"):
        operator_command("deactivate", "ada")
    with pytest.raises(CommandError, match=f"ada {LAST_ADMIN}"):
        operator_command("set-role", "ada", "operator")
    with pytest.raises(CommandError, match="No operator is called 'nobody'"):
        operator_command("deactivate", "nobody")
    with pytest.raises(CommandError, match="invalid choice"):
        operator_command("set-role", "ada", "root")
    assert user("ada").is_active and user("ada").groups.get().name == "admin"


def test_without_any_admin_other_operators_can_still_be_changed_from_a_shell():
    """The rule keeps the last admin; it does not stop a site that has none yet."""
    ensure_role_groups()
    operator_command("create", "bob", "--role", "operator")
    operator_command("set-role", "bob", "auditor")
    assert "Deactivated 'bob'" in operator_command("deactivate", "bob")
    assert not user("bob").is_active
