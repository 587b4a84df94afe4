"""The SSRF guard on server-side fetches (bulkops/outbound/): a jwks_uri cannot point
bulkops at loopback, private, link-local or other internal addresses unless
BULKOPS_ALLOW_PRIVATE_FETCH says so, and a fetch has a size cap and a deadline."""

from __future__ import annotations

import datetime as dt
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.exceptions import ValidationError

from accounts.models import CachedJwks
from accounts.services import register_client
from bulkops.outbound import AddressRefused, FetchError, refusal, request
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
