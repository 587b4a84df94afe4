from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from celery.contrib.testing.worker import TestWorkController, start_worker
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from bulkops.celery import app as celery_app


@pytest.fixture(scope="session", autouse=True)
def in_memory_broker() -> None:
    """Tests never touch the filesystem broker under var/: a `make run` worker on the
    same checkout must not see their tasks."""
    celery_app.conf.update(
        broker_url="memory://",
        broker_transport_options={"polling_interval": 0.05},
        result_backend="cache+memory://",
    )


@pytest.fixture(scope="session")
def celery_session_worker(in_memory_broker: None) -> Iterator[TestWorkController]:
    """A real Celery worker running our app in this process, on the in-memory broker.

    Tasks enqueued by the code under test (views, services) go through kombu to this
    worker's threads exactly as they would to a separate worker process.
    """
    with start_worker(
        celery_app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=30
    ) as worker:
        yield worker


@pytest.fixture
def celery_worker(celery_session_worker: TestWorkController) -> TestWorkController:
    """Tests that use this must be `django_db(transaction=True)`: the worker's threads
    see only committed rows."""
    return celery_session_worker


# --- Real keys and a real JWKS server for SMART Backend Services tests ----------------


@dataclass(frozen=True)
class KeyPair:
    """A private key, the kid it is registered under and the algorithm it signs with."""

    private: Any
    kid: str
    alg: str

    @property
    def public_jwk(self) -> dict[str, Any]:
        algorithm = RSAAlgorithm if self.alg.startswith("RS") else ECAlgorithm
        jwk = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    @property
    def private_jwk(self) -> dict[str, Any]:
        algorithm = RSAAlgorithm if self.alg.startswith("RS") else ECAlgorithm
        return {**json.loads(algorithm.to_jwk(self.private)), "kid": self.kid}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}


@pytest.fixture(scope="session")
def rsa_key() -> KeyPair:
    return KeyPair(rsa.generate_private_key(65537, 2048), "rsa-1", "RS384")


@pytest.fixture(scope="session")
def ec_key() -> KeyPair:
    return KeyPair(ec.generate_private_key(ec.SECP384R1()), "ec-1", "ES384")


@pytest.fixture(scope="session")
def other_rsa_key() -> KeyPair:
    """Another RSA key under the same kid as `rsa_key`: a forger's key."""
    return KeyPair(rsa.generate_private_key(65537, 2048), "rsa-1", "RS384")


class JwksServer(ThreadingHTTPServer):
    """Serves `jwks` at /jwks.json with `cache_control`; counts fetches in `hits`."""

    jwks: Any = None
    cache_control: str = ""
    hits: int = 0
    extra_bytes: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/jwks.json"

    def reset(self) -> None:
        self.jwks, self.cache_control, self.hits, self.extra_bytes = None, "", 0, 0


class _JwksHandler(BaseHTTPRequestHandler):
    server: JwksServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.hits += 1
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/jwks.json")
            self.end_headers()
            return
        body = json.dumps(self.server.jwks).encode() + b" " * self.server.extra_bytes
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.server.cache_control:
            self.send_header("Cache-Control", self.server.cache_control)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def jwks_server_session() -> Iterator[JwksServer]:
    server = JwksServer(("127.0.0.1", 0), _JwksHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def jwks_server(jwks_server_session: JwksServer, settings: Any) -> JwksServer:
    """The local JWKS server, emptied, with plain-http jwks_uri allowed for this test."""
    settings.BULKOPS_ALLOW_HTTP_JWKS = True
    jwks_server_session.reset()
    return jwks_server_session
