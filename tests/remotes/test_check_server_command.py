"""`manage.py check_server NAME`: a table of checks, exit status 1 when any failed."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import AuditEvent
from bulkops.signing_keys import generate_private_jwk, public_jwks
from remotes.models import RemoteServer, ServerCheck
from tests.remotes.remote_server import GROUP_ID
from tests.remotes.stub_server import NonConformingServer, serve

pytestmark = pytest.mark.django_db


def make_server(name: str, base_url: str, client_id: str, private: dict, **fields) -> RemoteServer:
    server = RemoteServer(name=name, base_url=base_url, client_id=client_id, **fields)
    server.set_private_jwk(private)
    server.save()
    return server


def table(output: str) -> dict[str, str]:
    return {line.split()[0]: line.split()[1] for line in output.splitlines()[:-1]}


def test_a_clean_server_exits_zero(remote) -> None:
    private = generate_private_jwk("ES384")
    client_id = remote.register(public_jwks(private))
    make_server("remote", remote.base_url, client_id, private, default_group_id=GROUP_ID)
    out = StringIO()

    call_command("check_server", "remote", stdout=out)

    rows = table(out.getvalue())
    assert rows["delete"] == rows["ndjson-files"] == "pass"
    assert "fail" not in rows.values()
    assert out.getvalue().splitlines()[-1].endswith("0 fail, 0 skip")
    assert ServerCheck.objects.get().status in ("pass", "warn")


def test_failed_checks_exit_one_after_printing_the_table() -> None:
    out = StringIO()
    with serve(NonConformingServer()) as stub:
        make_server("stub", stub.base_url, "us", generate_private_jwk("RS384"))
        with pytest.raises(CommandError, match=r"^11 check\(s\) failed against stub\.$"):
            call_command("check_server", "stub", stdout=out)
    rows = table(out.getvalue())
    assert (rows["token-reused-jti"], rows["delete"], rows["token-request"]) == (
        "fail", "fail", "pass",
    )  # fmt: skip
    assert "DELETE on the status URL answered 405, not 202." in out.getvalue()
    assert ServerCheck.objects.get().status == "fail"
    assert AuditEvent.objects.get(action="remote.check.finished").outcome == "failure"


def test_an_unknown_name_is_an_error() -> None:
    with pytest.raises(CommandError, match="No remote server is named 'nowhere'"):
        call_command("check_server", "nowhere")
