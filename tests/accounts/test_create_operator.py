from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.test import RequestFactory

from accounts.models import AuditEvent

pytestmark = pytest.mark.django_db


def run_create_operator(*args: str) -> str:
    out = StringIO()
    call_command("create_operator", *args, stdout=out)
    return out.getvalue()


def test_prints_a_password_that_logs_in_with_the_chosen_role():
    output = run_create_operator("--username", "ada", "--role", "auditor")
    password = re.search(r"Password \(shown once\): (\S+)", output).group(1)
    # A sign-in always comes with its request, which lock-outs are counted by.
    user = authenticate(
        RequestFactory().post("/accounts/login/"), username="ada", password=password
    )
    assert user is not None
    assert [g.name for g in user.groups.all()] == ["auditor"]
    assert user.has_perm("accounts.view_audit")
    assert not user.has_perm("accounts.run_exports")


def test_two_operators_get_different_passwords():
    first = run_create_operator("--username", "a1", "--role", "operator")
    second = run_create_operator("--username", "a2", "--role", "operator")
    assert first.splitlines()[-1] != second.splitlines()[-1]


def test_password_is_stored_hashed_and_recorded_in_the_audit_trail_without_it():
    output = run_create_operator("--username", "ada", "--role", "admin")
    password = output.splitlines()[-1].split()[-1]
    event = AuditEvent.objects.get(action="operator.created")
    assert event.details == {"username": "ada", "role": "admin"}
    assert password not in str(event.details)


def test_unknown_role_is_refused():
    with pytest.raises(CommandError, match="invalid choice"):
        run_create_operator("--username", "ada", "--role", "root")


def test_duplicate_username_is_refused_and_changes_nothing():
    run_create_operator("--username", "ada", "--role", "admin")
    with pytest.raises(CommandError, match="already exists"):
        run_create_operator("--username", "ada", "--role", "operator")
    assert AuditEvent.objects.filter(action="operator.created").count() == 1
