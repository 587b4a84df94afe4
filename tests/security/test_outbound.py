"""The SSRF guard on every server-side request (bulkops/outbound/): a jwks_uri, a remote
server (discovery, server checks, remote exports) or a redirect cannot point bulkops at
loopback, private, link-local or other internal addresses unless
BULKOPS_ALLOW_PRIVATE_FETCH says so; proxies come only from BULKOPS_OUTBOUND_PROXY;
a fetch has a size cap and a deadline; failures read as sentences."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from accounts.models import CachedJwks
from accounts.services import register_client
from bulkops.outbound import AddressRefused, FetchError, refusal, request
from bulkops.signing_keys import generate_private_jwk
from exports.bulk_client import BulkClientError, BulkExportClient, TokenSource, http
from exports.models import ExportJob
from remotes.models import RemoteExchange, RemoteExport, ServerCheck
from remotes.server_checks import run_check
from tests.processes import free_port, manage, process_env
from tests.remotes.conftest import make_server, run_in_process
from tests.remotes.stub_server import STUB_TOKEN, FaultyExportServer, serve
from tests.smart import post_token, sign_assertion

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),  # cloud instance metadata
        ("fe80::1", "link-local"),
        ("10.0.0.5", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),  # carrier-grade NAT: not globally routed
        ("fd00::1", "private"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - the address under test
        ("240.0.0.1", "reserved"),
        ("93.184.216.34", ""),
        ("2606:4700:4700::1111", ""),
    ],
)
def test_only_public_unicast_addresses_pass(address: str, kind: str) -> None:
    assert refusal(address) == kind


@pytest.fixture
def guarded(jwks_server: Any, settings: Any) -> Any:
    """The loopback JWKS server, with the opt-in that the jwks_server fixture gives
    taken back: as in production, where BULKOPS_ALLOW_PRIVATE_FETCH is off."""
    settings.BULKOPS_ALLOW_PRIVATE_FETCH = False
    return jwks_server


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_jwks_uri_on_loopback_is_refused_without_a_connection(guarded, rsa_key, host) -> None:
    guarded.jwks = rsa_key.jwks()
    url = guarded.url.replace("127.0.0.1", host)
    with pytest.raises(ValidationError) as refused:
        register_client(name="Probe", jwks_uri=url, scopes="system/*.read")
    (message,) = refused.value.message_dict["jwks_uri"]
    assert "loopback address" in message and "BULKOPS_ALLOW_PRIVATE_FETCH" in message
    assert guarded.hits == 0


def test_https_fetches_are_guarded_too(settings) -> None:
    settings.BULKOPS_ALLOW_PRIVATE_FETCH = False
    with pytest.raises(AddressRefused, match="169.254.169.254 is a link-local address"):
        request("GET", "https://169.254.169.254/latest/meta-data/", max_bytes=10, timeout=2)


def test_the_opt_in_lets_a_private_key_server_work(guarded, rsa_key, settings) -> None:
    guarded.jwks = rsa_key.jwks()
    settings.BULKOPS_ALLOW_PRIVATE_FETCH = True
    client = register_client(name="Lab", jwks_uri=guarded.url, scopes="system/*.read")
    assert post_token(sign_assertion(rsa_key, client.client_id)).status_code == 200
    assert guarded.hits == 2  # registration, then the token request (no Cache-Control)


def test_a_token_request_never_fetches_from_a_private_address(guarded, rsa_key, settings) -> None:
    """A client registered while the opt-in was on (or whose host later resolves to a
    private address) gets invalid_client, and nothing is fetched."""
    guarded.jwks = rsa_key.jwks()
    settings.BULKOPS_ALLOW_PRIVATE_FETCH = True
    client = register_client(name="Lab", jwks_uri=guarded.url, scopes="system/*.read")
    settings.BULKOPS_ALLOW_PRIVATE_FETCH = False
    guarded.hits = 0
    CachedJwks.objects.all().delete()
    response = post_token(sign_assertion(rsa_key, client.client_id))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "loopback address" in response.json()["error_description"]
    assert guarded.hits == 0


class _Drip(BaseHTTPRequestHandler):
    """Sends a valid start of a JWK Set, then one byte at a time, for as long as the
    client keeps reading (or 30 s): each read is quick, the whole never ends."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"keys": [')
        give_up = time.monotonic() + 30
        try:
            while time.monotonic() < give_up:
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass  # the client hung up, as it should

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def drip_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Drip)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    server.shutdown()
    server.server_close()


def test_a_server_that_drips_forever_is_cut_off(drip_url, settings) -> None:
    settings.BULKOPS_ALLOW_PRIVATE_FETCH = True
    with pytest.raises(FetchError, match="took too long"):
        request("GET", drip_url, max_bytes=1_000_000, timeout=0.5)


@pytest.fixture
def self_signed_https_url(tmp_path) -> Iterator[str]:
    """An https server on 127.0.0.1 whose certificate no trust store vouches for."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Drip)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/jwks.json"
    server.shutdown()
    server.server_close()


def test_the_guarded_https_connection_still_verifies_certificates(
    self_signed_https_url, settings
) -> None:
    """The guard replaces only how the socket is opened; TLS still checks the chain."""
    settings.BULKOPS_ALLOW_PRIVATE_FETCH = True
    with pytest.raises(FetchError, match="certificate of 127.0.0.1 could not be verified"):
        request("GET", self_signed_https_url, max_bytes=100, timeout=5)


# --- Every other outbound request: remote servers, redirects, proxies ------------------

REFUSED = (
    "127.0.0.1 is a loopback address; bulkops fetches only from public addresses unless "
    "BULKOPS_ALLOW_PRIVATE_FETCH=true"
)
PUBLIC = "http://93.184.216.34"  # a public address; only ever reached through the proxy


@dataclass
class Listener:
    """A port on 127.0.0.1 that counts the connections made to it and closes each once
    the request has arrived, without answering."""

    url: str
    accepted: int = 0


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = socket.create_server(("127.0.0.1", 0))
    record = Listener(f"http://127.0.0.1:{server.getsockname()[1]}")

    def accept() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:  # the listening socket was shut at the end of the test
                return
            record.accepted += 1
            with connection:
                connection.settimeout(5)
                with contextlib.suppress(OSError):
                    connection.recv(65536)

    threading.Thread(target=accept, daemon=True).start()
    yield record
    with contextlib.suppress(OSError):
        server.shutdown(socket.SHUT_RDWR)
    server.close()


@pytest.fixture
def guard_on(settings) -> None:
    settings.BULKOPS_ALLOW_PRIVATE_FETCH = False


@pytest.fixture
def loopback_allowed(settings) -> None:
    settings.BULKOPS_ALLOW_PRIVATE_FETCH = True


@pytest.fixture
def stub() -> Iterator[FaultyExportServer]:
    with serve(FaultyExportServer()) as server:
        yield server


def remote_at(base_url: str, **fields: Any):
    return make_server("lab", base_url, "us-at-lab", generate_private_jwk("ES384"), **fields)


def test_discovery_of_a_loopback_server_is_refused_without_a_connection(
    guard_on, listener, console_client
) -> None:
    remote_at(f"{listener.url}/fhir")
    page = console_client("admin").post("/remotes/lab/discover/", follow=True)
    assert f"Token endpoint not found: {REFUSED}." in page.content.decode()
    assert listener.accepted == 0


def test_a_server_check_of_a_loopback_server_is_refused_without_a_connection(
    guard_on, listener
) -> None:
    check = run_check(check=ServerCheck.objects.create(server=remote_at(f"{listener.url}/fhir")))
    results = {result["name"]: result for result in check.results}
    assert results["smart-configuration"]["summary"] == f"The request failed: {REFUSED}."
    assert results["kickoff-without-token"]["summary"] == f"The request failed: {REFUSED}."
    assert listener.accepted == 0


@pytest.mark.parametrize("token_url", ["", "/token"])
def test_a_remote_export_from_a_loopback_server_is_refused_without_a_connection(
    guard_on, listener, token_url
) -> None:
    server = remote_at(f"{listener.url}/fhir", token_url=token_url and listener.url + token_url)
    job = run_in_process(server)
    assert job.failure_reason == f"The token request failed: {REFUSED}"
    assert listener.accepted == 0


def test_an_unreachable_remote_is_named_in_plain_words(loopback_allowed, console_client) -> None:
    port = free_port()  # nothing listens there
    closed = f"http://127.0.0.1:{port}"
    server = remote_at(f"{closed}/fhir", token_url=f"{closed}/token")
    refused = f"could not connect to 127.0.0.1 port {port}: connection refused"

    job = run_in_process(server)
    assert job.failure_reason == f"The token request failed: {refused}"
    check = run_check(check=ServerCheck.objects.create(server=server))
    (result, *_) = check.results
    assert result["summary"] == f"The request failed: {refused}."

    auditor = console_client("auditor")
    assert job.failure_reason in auditor.get(f"/exports/{job.uuid}/").content.decode()
    check_page = auditor.get(f"/remotes/lab/checks/{check.pk}/").content.decode()
    assert result["summary"] in check_page


def test_header_names_sent_in_lowercase_work_in_a_remote_export(loopback_allowed, stub) -> None:
    """content-location, retry-after and x-progress as HTTP/2 and many proxies send them."""
    stub.lowercase_headers = True
    stub.polls = [(202, {"X-Progress": "50% - halfway", "Retry-After": "1"})]
    job = run_in_process(remote_at(stub.base_url))

    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason
    assert RemoteExport.objects.get(job=job).progress == "50% - halfway"
    polls = list(RemoteExchange.objects.filter(export__job=job, url__endswith="/status"))
    assert [poll.status for poll in polls] == [202, 200, 202]  # the last is the DELETE
    assert (polls[1].answered_at - polls[0].answered_at).total_seconds() >= 1
    assert polls[0].response_headers["retry-after"] == "1"  # the log shows them as sent


def test_proxies_from_the_environment_are_not_used(
    loopback_allowed, stub, listener, monkeypatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, listener.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    job = run_in_process(remote_at(stub.base_url))
    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason
    assert listener.accepted == 0


def test_a_file_redirected_to_another_origin_is_fetched_without_our_token(
    loopback_allowed, stub
) -> None:
    """A file endpoint that sends the client on to a presigned URL elsewhere: the file
    arrives, the token stays with the remote's own origin."""
    with serve(FaultyExportServer()) as elsewhere:
        stub.file_redirect = f"{elsewhere.base_url}/files/Patient.ndjson?X-Amz-Signature=s"
        job = run_in_process(remote_at(stub.base_url))

    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason
    assert job.files.get().resource_count == 2
    (asked,) = [headers for _, path, headers in stub.requests if path.startswith("/files/")]
    (sent_on,) = [headers for _, path, headers in elsewhere.requests if path.startswith("/files/")]
    assert asked["Authorization"] == f"Bearer {STUB_TOKEN}"
    assert "authorization" not in {name.lower() for name in sent_on}


def test_a_presigned_signature_never_reaches_the_log(loopback_allowed, stub, caplog) -> None:
    """The exchange log shows the file's URL redacted; no log line shows it at all (httpx
    logs each request's full URL at INFO)."""
    with serve(FaultyExportServer()) as elsewhere:
        stub.file_redirect = f"{elsewhere.base_url}/files/Patient.ndjson?X-Amz-Signature=s3cr3t"
        job = run_in_process(remote_at(stub.base_url))

    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason
    assert "s3cr3t" not in caplog.text
    assert all("s3cr3t" not in exchange.url for exchange in RemoteExchange.objects.all())


@dataclass
class ForwardProxy:
    """A forward proxy on 127.0.0.1 that answers for every origin itself: it records
    each request's method and absolute URL and answers a redirect to `redirect_to`, or
    when that is empty an OAuth error."""

    url: str = ""
    redirect_to: str = ""
    seen: list[tuple[str, str]] = field(default_factory=list)


class _ForwardProxyHandler(BaseHTTPRequestHandler):
    proxy: ForwardProxy

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.proxy.seen.append((self.command, self.path))
        body = b"" if self.proxy.redirect_to else b'{"error": "invalid_client"}'
        self.send_response(302 if self.proxy.redirect_to else 400)
        if self.proxy.redirect_to:
            self.send_header("Location", self.proxy.redirect_to)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer  # noqa: N815 - http.server's naming

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def forward_proxy() -> Iterator[ForwardProxy]:
    proxy = ForwardProxy()
    handler = type("Handler", (_ForwardProxyHandler,), {"proxy": proxy})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    proxy.url = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield proxy
    server.shutdown()
    server.server_close()


def test_a_redirect_to_a_refused_address_is_refused_without_a_connection(
    guard_on, forward_proxy, listener, settings
) -> None:
    """The first hop is a public address (reached through the configured proxy); the
    redirect it answers points at loopback, and that hop is checked again."""
    settings.BULKOPS_OUTBOUND_PROXY = forward_proxy.url
    forward_proxy.redirect_to = f"{listener.url}/latest/meta-data/"
    tokens = TokenSource(f"{PUBLIC}/token", "us", {}, "system/*.read")
    client = BulkExportClient(f"{PUBLIC}/fhir", tokens)
    file_url = f"{PUBLIC}/fhir/files/1.ndjson"

    with pytest.raises(BulkClientError) as refused, client.open_file(file_url, {}) as chunks:
        list(chunks)
    assert str(refused.value) == f"download of {file_url} failed: {REFUSED}"
    assert forward_proxy.seen == [("GET", file_url)]
    assert listener.accepted == 0


def test_the_configured_proxy_carries_no_request_the_guard_refuses(
    guard_on, forward_proxy, listener, settings
) -> None:
    settings.BULKOPS_OUTBOUND_PROXY = forward_proxy.url
    with pytest.raises(AddressRefused, match=REFUSED):
        request("GET", f"{listener.url}/admin", max_bytes=100, timeout=5)
    assert forward_proxy.seen == [] and listener.accepted == 0


def test_bulkops_outbound_proxy_carries_every_request(forward_proxy, tmp_path) -> None:
    """The setting read from the environment by the real settings module, in the
    reference client run from a shell."""
    key = tmp_path / "key.json"
    key.write_text(json.dumps({"keys": [generate_private_jwk("ES384")]}))
    env = process_env(tmp_path / "var", BULKOPS_OUTBOUND_PROXY=forward_proxy.url)
    arguments = ["--base-url", f"{PUBLIC}/fhir", "--client-id", "us", "--key", str(key)]
    result = manage(env, "bulk_export", *arguments, "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "token request refused: HTTP 400: invalid_client" in result.stderr
    assert forward_proxy.seen == [("POST", f"{PUBLIC}/auth/token")]


def test_a_proxy_that_is_not_an_http_url_stops_start_up(tmp_path) -> None:
    env = process_env(tmp_path, BULKOPS_OUTBOUND_PROXY="socks5://127.0.0.1:1080")
    result = manage(env, "check")
    assert result.returncode != 0
    assert "BULKOPS_OUTBOUND_PROXY must be an http:// or https:// URL" in result.stderr


def test_bulk_export_from_a_shell_reaches_loopback_unless_told_not_to(
    guard_on, listener, tmp_path
) -> None:
    """The operator typed the URL and can reach it from that shell anyway."""
    key = tmp_path / "key.json"
    key.write_text(json.dumps({"keys": [generate_private_jwk("ES384")]}))
    options = {"base_url": f"{listener.url}/fhir", "client_id": "us", "key": str(key)}
    with pytest.raises(CommandError, match=REFUSED):
        call_command("bulk_export", out=tmp_path / "out", allow_private=False, **options)
    assert listener.accepted == 0
    with pytest.raises(CommandError, match="127.0.0.1 did not give a complete HTTP answer"):
        call_command("bulk_export", out=tmp_path / "out", **options)
    assert listener.accepted == 1


class _SetsCookies(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Set-Cookie", "session=from-the-remote; Path=/")
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.cookies.append(self.headers.get("Cookie"))  # type: ignore[attr-defined]

    def log_message(self, *args: Any) -> None:
        pass


def test_cookies_a_server_sets_are_never_sent_back(loopback_allowed) -> None:
    """One client serves every remote: a session cookie must not stand in for a token."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SetsCookies)
    server.cookies = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for _ in range(2):
            assert http("GET", f"http://127.0.0.1:{server.server_port}/").status == 200
    finally:
        server.shutdown()
        server.server_close()
    assert server.cookies == [None, None]  # type: ignore[attr-defined]
