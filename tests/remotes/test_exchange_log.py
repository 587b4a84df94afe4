"""The exchange log of a Bulk Data client: what was asked and answered, never a credential."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from exports.bulk_client import http, redact_url


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        self.send_response(202)
        self.send_header("X-Progress", "50%")
        self.send_header("Set-Cookie", "session=abc")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def echo_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_exchange_records_status_and_headers_with_credentials_redacted(echo_url):
    seen = []
    result = http(
        "GET",
        f"{echo_url}/status?X-Amz-Signature=abc123&part=1",
        headers={"Authorization": "Bearer s3cr3t", "Accept": "application/json"},
        on_exchange=seen.append,
    )

    assert result.status == 202
    (exchange,) = seen
    assert (exchange.method, exchange.status) == ("GET", 202)
    assert exchange.response_headers["X-Progress"] == "50%"
    assert exchange.request_headers == {"Authorization": "REDACTED", "Accept": "application/json"}
    assert exchange.response_headers["Set-Cookie"] == "REDACTED"
    assert "abc123" not in exchange.url and "part=1" in exchange.url
    assert "s3cr3t" not in repr(exchange)


def test_redact_url_keeps_everything_but_signature_parameters():
    url = "https://bucket.s3.example/k.ndjson?X-Amz-Credential=AK%2F1&X-Amz-Expires=60"
    assert redact_url(url) == (
        "https://bucket.s3.example/k.ndjson?X-Amz-Credential=REDACTED&X-Amz-Expires=60"
    )


def test_max_bytes_bounds_what_is_read_and_says_when_the_answer_was_longer(echo_url):
    class Long(_Echo):
        def do_GET(self):  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"resourceType":"Patient"}\n' * 1000)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Long)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/file"
        cut = http("GET", url, max_bytes=100)
        whole = http("GET", url, max_bytes=27_000)
    finally:
        server.shutdown()

    assert (len(cut.body), cut.truncated) == (100, True)
    assert (len(whole.body), whole.truncated) == (27_000, False)
