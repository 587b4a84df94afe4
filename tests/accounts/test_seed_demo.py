from __future__ import annotations

import json
import re
import time
from io import StringIO

import jwt
import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import RequestFactory

from accounts.models import BackendClient
from bulkops.signing_keys import thumbprint
from tests.smart import TOKEN_URL, assert_issued, post_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def seed(tmp_path):
    def run() -> str:
        out = StringIO()
        call_command("seed_demo", key_file=tmp_path / "demo-key.jwks", stdout=out)
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
    key_file = tmp_path / "demo-key.jwks"
    assert key_file.stat().st_mode & 0o777 == 0o600
    private = json.loads(key_file.read_text())["keys"][0]
    assert "d" in private
    assert all("d" not in key for key in client.jwks["keys"])
    assert f"--client-id {client.client_id} --key {key_file}" in first
    second = seed()
    assert BackendClient.objects.count() == 1
    assert json.loads(key_file.read_text())["keys"][0] == private
    assert client.client_id in second


def test_the_demo_key_is_usable_as_is_by_clients_that_read_jwks_or_pem(seed, tmp_path):
    """cumulus-etl and smart-fetch take the key of a .jwks file that says key_ops sign,
    or a PEM file, and sign the latter under the key's RFC 7638 thumbprint."""
    seed()
    client = BackendClient.objects.get(name="demo-client")
    (signing,) = json.loads((tmp_path / "demo-key.jwks").read_text())["keys"]
    assert signing["key_ops"] == ["sign"]
    assert client.jwks["keys"][0]["key_ops"] == ["verify"]  # the registered public half
    pem_file = tmp_path / "demo-key.pem"
    assert pem_file.stat().st_mode & 0o777 == 0o600
    pem = pem_file.read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    for key, kid, jti in (
        (pem, thumbprint(signing), "from-pem"),
        (jwt.PyJWK(signing).key, signing["kid"], "from-jwks"),
    ):
        assertion = jwt.encode(
            {
                "iss": client.client_id,
                "sub": client.client_id,
                "aud": TOKEN_URL,
                "exp": int(time.time()) + 240,
                "jti": jti,
            },
            key,
            algorithm=signing["alg"],
            headers={"kid": kid},
        )
        assert_issued(post_token(assertion))
