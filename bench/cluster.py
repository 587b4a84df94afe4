"""A multi-host bulkops installation on one machine (bench/netns.py): a services host
with its own PostgreSQL, Redis and S3 server (moto), and bulkops hosts started with the
commands of the systemd units in deploy/systemd, each with its own empty var dir.

The multi-host test (tests/multihost) and `python -m bench --hosts` build on it. The
processes read the units' ExecStart lines, so a unit that stops working fails the test.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.netns import SUBNET, Host, Network
from exports.bulk_client import BulkExportClient, TokenSource, http
from tests.processes import BIN, ROOT, process_env

UNITS = ROOT / "deploy" / "systemd"
INSTALL_DIR = "/opt/bulkops"  # where the units expect the checkout, its venv in .venv
WEB_PORT = 8000
BUCKET = "bulkops-exports"
POLL_SECONDS = 0.1
SYSTEM_PATH = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}  # for services, which need nothing else


def postgres_bin() -> Path | None:
    """The newest Debian PostgreSQL's server binaries, or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts)
    return found[-1].parent if found else None


def missing_services() -> str | None:
    """What the services host needs and this machine lacks, or None."""
    if postgres_bin() is None:
        return "PostgreSQL server binaries are not installed (Debian: postgresql)"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (Debian: redis-server)"
    if not (BIN / "moto_server").exists():
        return "moto's server is not installed (pip install -e '.[test]')"
    return None


def unit_command(unit: str, env: dict[str, str], hostname: str) -> list[str]:
    """The ExecStart of deploy/systemd/<unit>.service as this checkout runs it: the venv
    of the checkout for /opt/bulkops/.venv, `${NAME}` from `env` or the unit's own
    Environment= defaults, systemd's %H as the host's name."""
    defaults: dict[str, str] = {}
    command = ""
    for line in (UNITS / f"{unit}.service").read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "Environment":
            defaults.update(item.split("=", 1) for item in shlex.split(value))
        elif key == "ExecStart":
            command = value
    values = {**defaults, **env}
    words = [
        re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], word).replace("%H", hostname)
        for word in shlex.split(command)
    ]
    program = Path(words[0])
    assert program.parent == Path(INSTALL_DIR, ".venv", "bin"), words[0]
    return [str(BIN / program.name), *words[1:]]


@dataclass
class Services:
    """PostgreSQL, Redis and an S3 server on one host, each on its usual port (the
    host's network is its own)."""

    host: Host
    password: str
    data_dir: Path

    @property
    def database_url(self) -> str:
        return f"postgres://bulkops:{self.password}@{self.host.address}:5432/bulkops"

    @property
    def broker_url(self) -> str:
        return f"redis://{self.host.address}:6379/0"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.host.address}:5000"

    @classmethod
    def start(cls, host: Host, logs: Path) -> Services:
        pg = postgres_bin()
        assert pg is not None
        # PostgreSQL runs as the postgres user, which may not enter pytest's folders.
        data_dir = Path(tempfile.mkdtemp(prefix=f"bulkops-pg-{host.namespace}-"))
        services = cls(host, secrets.token_urlsafe(16), data_dir)
        try:
            services._start(pg, logs)
        except BaseException:
            services.close()
            raise
        return services

    def _start(self, pg: Path, logs: Path) -> None:
        host, data_dir = self.host, self.data_dir
        (data_dir / "password").write_text(self.password)
        shutil.chown(data_dir, "postgres", "postgres")
        host.run(
            [str(pg / "initdb"), "-D", str(data_dir / "data"), "-U", "bulkops", "--no-sync",
             "--pwfile", str(data_dir / "password"), "--auth-local=trust",
             "--auth-host=scram-sha-256", "--locale=C", "-E", "UTF8"],
            user="postgres",
        )  # fmt: skip
        with (data_dir / "data" / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {SUBNET}.0/24 scram-sha-256\n")
        host.start(
            [
                str(pg / "postgres"),
                "-D",
                str(data_dir / "data"),
                *postgres_options(data_dir, host.address),
            ],
            env=SYSTEM_PATH,
            log=logs / "postgres.log",
            user="postgres",
        )
        host.start(
            ["redis-server", "--bind", host.address, "127.0.0.1", "--port", "6379", "--save", "",
             "--appendonly", "no", "--protected-mode", "no"],
            env=SYSTEM_PATH,
            log=logs / "redis.log",
        )  # fmt: skip
        host.start(
            [str(BIN / "moto_server"), "-H", host.address, "-p", "5000"],
            env=SYSTEM_PATH,
            log=logs / "moto.log",
        )
        self.wait_until_ready(pg)

    def wait_until_ready(self, pg: Path) -> None:
        socket_dir = str(self.data_dir / "data")
        retry(lambda: self.host.run([str(pg / "pg_isready"), "-h", socket_dir, "-q"]))
        self.host.run([str(pg / "createdb"), "-h", socket_dir, "-U", "bulkops", "bulkops"])
        retry(lambda: self.host.run(["redis-cli", "-h", "127.0.0.1", "ping"]))
        retry(lambda: self.host.call(make_bucket, self.s3_endpoint))

    def close(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)


def retry(attempt: Any, timeout: float = 60) -> None:
    """Call `attempt` until it raises nothing (a service still starting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            attempt()
            return
        except Exception as error:
            if time.monotonic() > deadline:
                raise RuntimeError(f"a service did not start: {error}") from error
            time.sleep(0.3)


def postgres_options(data_dir: Path, address: str) -> list[str]:
    """A throwaway cluster (no fsync) that notices a lost host within seconds.

    A host whose link is cut may leave a session inside a transaction, holding row
    locks the partitions of every other worker wait for; by default PostgreSQL keeps
    it for the two hours of TCP keep-alive. docs/deployment.md sets the same options.
    """
    settings = {
        "listen_addresses": f"{address},127.0.0.1",
        "unix_socket_directories": str(data_dir / "data"),
        "fsync": "off",
        "full_page_writes": "off",
        "tcp_keepalives_idle": "2",
        "tcp_keepalives_interval": "1",
        "tcp_keepalives_count": "3",
        "tcp_user_timeout": "5000",
    }
    return [word for name, value in settings.items() for word in ("-c", f"{name}={value}")]


def make_bucket(endpoint: str) -> None:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's server takes any key
    )
    if BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=BUCKET)


class Cluster:
    """bulkops on hosts of one network around one services host. `settings` are
    environment variables every bulkops host gets besides the shared ones."""

    def __init__(self, network: Network, work_dir: Path, **settings: str) -> None:
        self.network = network
        self.work_dir = work_dir
        self.services = Services.start(network.add_host("services"), work_dir / "services")
        self.client_host = network.add_host("client")
        self.started: dict[str, list[subprocess.Popen]] = {}
        self.shared = {
            "DATABASE_URL": self.services.database_url,
            "CELERY_BROKER_URL": self.services.broker_url,
            "BULKOPS_CACHE_URL": self.services.broker_url.replace("/0", "/1"),
            "SECRET_KEY": secrets.token_urlsafe(50),
            "BULKOPS_STORAGE": "s3",
            "BULKOPS_S3_BUCKET": BUCKET,
            "BULKOPS_S3_ENDPOINT_URL": self.services.s3_endpoint,
            "BULKOPS_S3_REGION": "us-east-1",
            "BULKOPS_S3_ADDRESSING_STYLE": "path",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "BULKOPS_ALLOWED_HOSTS": ",".join(f"{SUBNET}.{n}" for n in range(2, 64)),
            **settings,
        }

    def env(self, host: Host, **overrides: str) -> dict[str, str]:
        """What /etc/bulkops/bulkops.env holds, plus this host's own empty var dir."""
        return process_env(self.work_dir / host.name / "var", **self.shared, **overrides)

    def manage(self, host: Host, *args: str) -> str:
        return host.run(
            [str(BIN / "python"), "manage.py", *args], env=self.env(host), cwd=ROOT
        ).stdout

    def prepare(self, host: Host, patients: int) -> None:
        """Schema (the migrate unit), a generated store and the demo backend client."""
        host.run(unit_command("bulkops-migrate", self.env(host), host.name), env=self.env(host),
                 cwd=ROOT)  # fmt: skip
        generated = self.manage(host, "generate_fhir", "--patients", str(patients), "--seed", "5")
        self.group_id = re.search(r"Group/(\S+)", generated).group(1)
        key_file = self.work_dir / "demo-client-key.json"
        seeded = self.manage(host, "seed_demo", "--url", "http://example.org", "--key-file",
                             str(key_file))  # fmt: skip
        self.client_id = re.search(r"--client-id (\S+)", seeded).group(1)
        self.private_jwk = json.loads(key_file.read_text())["keys"][0]

    def start(self, unit: str, host: Host, **overrides: str) -> subprocess.Popen:
        env = self.env(host, **overrides)
        log = self.work_dir / host.name / f"{unit}.log"
        process = host.start(unit_command(unit, env, host.name), env=env, log=log, cwd=ROOT)
        self.started.setdefault(host.name, []).append(process)
        return process

    def stop_bulkops(self, host: Host) -> None:
        """Stop what `start` started on `host` (its services keep running)."""
        for process in self.started.pop(host.name, []):
            host.stop(process)

    def start_web(self, host: Host) -> str:
        """gunicorn on `host` (one worker: the machine's cores are few); its base URL."""
        self.start("bulkops-web", host, WEB_BIND=f"{host.address}:{WEB_PORT}", WEB_WORKERS="1")
        base = f"http://{host.address}:{WEB_PORT}"
        deadline = time.monotonic() + 60
        while self.client_host.call(_status, f"{base}/healthz") != 200:
            assert time.monotonic() < deadline, f"no web server on {host.name}"
            time.sleep(0.2)
        return base

    def start_worker(self, host: Host) -> subprocess.Popen:
        """A worker of one process on `host`, once it consumes tasks."""
        log = self.work_dir / host.name / "bulkops-worker.log"
        earlier = log.stat().st_size if log.exists() else 0  # a stopped worker's lines
        process = self.start("bulkops-worker", host, WORKER_CONCURRENCY="1")
        deadline = time.monotonic() + 60
        while f"celery@{host.name} ready.".encode() not in log.read_bytes()[earlier:]:
            assert process.poll() is None, f"the worker on {host.name} exited"
            assert time.monotonic() < deadline, f"the worker on {host.name} never got ready"
            time.sleep(0.2)
        return process

    def start_beat(self, host: Host) -> subprocess.Popen:
        return self.start("bulkops-beat", host)

    def client(self, base: str) -> BulkExportClient:
        tokens = TokenSource(
            f"{base}/auth/token", self.client_id, self.private_jwk, "system/*.read",
            allow_private=True,
        )  # fmt: skip
        return BulkExportClient(f"{base}/fhir", tokens, allow_private=True)

    def kick_off(self, base: str, path: str) -> str:
        return self.client_host.call(self.client(base).kick_off, path, [])

    def finish(self, base: str, status_url: str, out: Path) -> dict[str, Counter[bytes]]:
        """Wait for the export (polling every 0.1 s) and download its output: the lines
        of each resource type, counted."""
        return self.client_host.call(self._finish, base, status_url, out)

    def _finish(self, base: str, status_url: str, out: Path) -> dict[str, Counter[bytes]]:
        client = self.client(base)
        lines: dict[str, Counter[bytes]] = {}
        for resource_type, path, _ in client.download(self._wait(base, status_url), out).files:
            lines.setdefault(resource_type, Counter()).update(path.read_bytes().splitlines())
        return lines

    def wait(self, base: str, status_url: str) -> dict[str, Any]:
        """The complete manifest, polled for every 0.1 s."""
        return self.client_host.call(self._wait, base, status_url)

    def _wait(self, base: str, status_url: str) -> dict[str, Any]:
        poll = {"headers": self.client(base)._auth(), "allow_private": True}
        while (answer := http("GET", status_url, **poll)).status == 202:
            time.sleep(POLL_SECONDS)
        assert answer.status == 200, (answer.status, answer.body[:500])
        return answer.json()

    def export(self, base: str, path: str, out: Path) -> dict[str, Counter[bytes]]:
        return self.finish(base, self.kick_off(base, path), out)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of one query on the installation's database, asked from the client host."""
        return self.client_host.call(_query, self.services.database_url, sql, params)

    def close(self) -> None:
        self.services.close()


def _status(url: str) -> int:
    try:
        return http("GET", url, allow_private=True).status
    except Exception:  # not listening yet
        return 0


def _query(url: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as connection:
        return connection.execute(sql, params).fetchall()
