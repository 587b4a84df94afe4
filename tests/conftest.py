from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from celery.contrib.testing.worker import TestWorkController, start_worker
from celery.worker import state as worker_state
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from bulkops.celery import app as celery_app
from bulkops.output_storages import parse_output_storages

# Tests that take minutes: a browser, whole deployments killed and restarted. They are
# `slow`, so `-m "not slow"` leaves them out (as CI does on its middle Python).
SLOW_DIRECTORIES = [Path(__file__).parent / name for name in ("browser", "faults", "multihost")]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.path.is_relative_to(directory) for directory in SLOW_DIRECTORIES):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def in_memory_broker() -> None:
    """Tests never touch the filesystem broker under var/: a `make run` worker on the
    same checkout must not see their tasks."""
    celery_app.conf.update(
        broker_url="memory://localhost/",
        broker_transport_options={"polling_interval": 0.05},
        result_backend="cache+memory://",
    )


@pytest.fixture(scope="session")
def celery_session_worker(in_memory_broker: None) -> Iterator[TestWorkController]:
    """A real Celery worker running our app in this process, on the in-memory broker.

    Tasks enqueued by the code under test (views, services) go through kombu to this
    worker's threads exactly as they would to a separate worker process.

    Its threads close their database connections after each task (Celery's default):
    a connection kept by a worker thread would outlive it and stop the test database
    from being dropped. Worker processes keep theirs, as tests/faults checks.
    """
    celery_app.conf.update(CELERY_DB_REUSE_MAX=None)
    with start_worker(
        celery_app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=30
    ) as worker:
        yield worker


@pytest.fixture
def celery_worker(celery_session_worker: TestWorkController) -> Iterator[TestWorkController]:
    """Tests that use this must be `django_db(transaction=True)`: the worker's threads
    see only committed rows.

    After the test, work it queued and nobody waited for is dropped and the tasks still
    running are given time to end, before the test database is flushed: a task writing
    during the flush deadlocks it on PostgreSQL, and one that outlives the flush writes
    into the next test."""
    yield celery_session_worker
    celery_app.control.purge()
    deadline = time.monotonic() + 15
    while worker_state.active_requests and time.monotonic() < deadline:
        time.sleep(0.05)


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
        jwks = self.server.jwks  # bytes are served as they are (hostile documents)
        body = jwks if isinstance(jwks, bytes) else json.dumps(jwks).encode()
        body += b" " * self.server.extra_bytes
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
    """The local JWKS server, emptied. It listens on 127.0.0.1 over plain http, so this
    test opts in to both: http jwks_uri and fetches from a loopback address."""
    settings.BULKOPS_ALLOW_HTTP_JWKS = True
    settings.BULKOPS_ALLOW_PRIVATE_FETCH = True
    jwks_server_session.reset()
    return jwks_server_session


# --- A real S3 HTTP endpoint: moto's standalone server on 127.0.0.1 ------------------


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    @contextmanager
    def credentials_checked(self) -> Iterator[None]:
        """moto checks credentials only when asked to (its /moto-api/reset-auth)."""
        self._reset_auth(b"0")
        try:
            yield
        finally:
            self._reset_auth(b"inf")

    def _reset_auth(self, count: bytes) -> None:
        url = f"{self.endpoint}/moto-api/reset-auth"
        request = urllib.request.Request(url, data=count, headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request, timeout=10).close()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with pytest.MonkeyPatch.context() as patch:
        # Read by moto at import: let tests use parts far below S3's 5 MiB minimum.
        patch.setenv("S3_UPLOAD_PART_MIN_SIZE", "256")
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
        server.start()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request
    host, port = server.get_host_and_port()
    yield S3Server(f"http://{host}:{port}")
    server.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def s3(s3_server: S3Server, settings: Any, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    """BULKOPS_STORAGE=s3 on a fresh bucket of the moto server, with credentials in the
    environment as boto3's default chain finds them in production."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = f"bulkops-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=bucket)
    settings.BULKOPS_STORAGE = "s3"
    settings.BULKOPS_S3_BUCKET = bucket
    settings.BULKOPS_S3_ENDPOINT_URL = s3_server.endpoint
    settings.BULKOPS_S3_REGION = "us-east-1"
    settings.BULKOPS_S3_ADDRESSING_STYLE = "path"
    settings.BULKOPS_S3_PREFIX = ""
    settings.BULKOPS_S3_SSE = ""
    return S3Bucket(s3_server, bucket)


@dataclass(frozen=True)
class S3Bucket:
    server: S3Server
    name: str

    def keys(self, prefix: str = "") -> list[str]:
        listing = self.server.client().list_objects_v2(Bucket=self.name, Prefix=prefix)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def open_uploads(self) -> list[dict[str, Any]]:
        return self.server.client().list_multipart_uploads(Bucket=self.name).get("Uploads", [])

    def head(self, key: str) -> dict[str, Any]:
        return self.server.client().head_object(Bucket=self.name, Key=key)


ARCHIVE_SECRET = "archive-secret-7d1c0f"  # moto takes any key unless asked to check


@pytest.fixture
def archive(s3_server, settings, monkeypatch, tmp_path) -> S3Bucket:
    """Default storage on local disk; "archive" on S3 with keys from the variables its
    entry names. No AWS_* variable, profile or instance role is reachable, so boto3's
    default chain finds nothing: only the named variables can open the bucket."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("ARCHIVE_KEY_ID", "testing")
    monkeypatch.setenv("ARCHIVE_SECRET", ARCHIVE_SECRET)
    bucket = f"archive-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=bucket)
    settings.BULKOPS_STORAGE = "local"
    settings.BULKOPS_LOCAL_STORAGE_DIR = tmp_path / "default"
    settings.BULKOPS_OUTPUT_STORAGES = parse_output_storages(
        json.dumps(
            {
                "archive": {
                    "kind": "s3",
                    "bucket": bucket,
                    "endpoint": s3_server.endpoint,
                    "region": "us-east-1",
                    "addressing_style": "path",
                    "access_key_env": "ARCHIVE_KEY_ID",
                    "secret_key_env": "ARCHIVE_SECRET",
                }
            }
        )
    )
    return S3Bucket(s3_server, bucket)
