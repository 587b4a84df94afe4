from __future__ import annotations

import json
import re
from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import RequestFactory

from accounts.models import BackendClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def seed(tmp_path):
    def run() -> str:
        out = StringIO()
        call_command("seed_demo", key_file=tmp_path / "demo-key.json", stdout=out)
        return out.getvalue()

    return run


def test_empty_database_gets_a_demo_admin_whose_password_is_printed_once(seed):
    first = seed()
    password = re.search(r"Password:\s+(\S+)", first).group(1)
    admin = authenticate(
        RequestFactory().post("/accounts/login/"), username="admin", password=password
    )
    assert admin.has_perm("accounts.manage_clients")
    second = seed()
    assert password not in second
    assert "changepassword admin" in second
    assert "http://127.0.0.1:8000/" in second


def test_a_demo_client_is_registered_once_with_its_private_key_kept_on_disk_only(seed, tmp_path):
    first = seed()
    client = BackendClient.objects.get(name="demo-client")
    key_file = tmp_path / "demo-key.json"
    assert key_file.stat().st_mode & 0o777 == 0o600
    private = json.loads(key_file.read_text())["keys"][0]
    assert "d" in private
    assert all("d" not in key for key in client.jwks["keys"])
    assert f"--client-id {client.client_id} --key {key_file}" in first
    second = seed()
    assert BackendClient.objects.count() == 1
    assert json.loads(key_file.read_text())["keys"][0] == private
    assert client.client_id in second
