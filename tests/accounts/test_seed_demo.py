from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_empty_database_gets_a_demo_admin_whose_password_is_printed_once():
    first = seed()
    password = re.search(r"Password:\s+(\S+)", first).group(1)
    assert authenticate(username="admin", password=password).has_perm("accounts.manage_clients")
    second = seed()
    assert password not in second
    assert "changepassword admin" in second
    assert "http://127.0.0.1:8000/" in second
