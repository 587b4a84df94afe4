"""Several hosts on one machine: Linux network namespaces joined by a bridge.

Used by the multi-host test (tests/multihost) and `python -m bench --hosts`. Each host is
a network namespace with its own host name (a UTS namespace per process started in it)
and one veth link to a bridge that lives in a namespace of its own, so nothing is added
to the machine's own network and nothing leaves it: the hosts reach each other and
nothing else. Names carry the creating process's id, so concurrent runs never collide,
and `Network.close` removes every namespace and process it made, whatever happened.

Needs root (or CAP_SYS_ADMIN and CAP_NET_ADMIN), `ip` (iproute2) and `unshare`
(util-linux); `unavailable_reason()` says what is missing.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")

SUBNET = "10.77.0"  # private to each run's namespaces, so every run may use it
CLONE_NEWNET = 0x40000000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs this as root)"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian: iproute2, util-linux)"
    probe = f"bulkops-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` is not allowed here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Host:
    """One namespace: an address on the bridge, the processes started in it, and a
    thread that makes its sockets there (for clients running in this process)."""

    name: str
    namespace: str
    address: str
    link: str  # the host's end of its veth, named the same inside its namespace
    processes: list[subprocess.Popen] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)
    _thread: ThreadPoolExecutor | None = None
    link_cut: bool = False

    def command(self, argv: Sequence[str], user: str | None = None) -> list[str]:
        """`argv` as run on this host: inside its network namespace, under its own host
        name, as `user` when given."""
        runas = ["runuser", "-u", user, "--"] if user else []
        return [
            "ip", "netns", "exec", self.namespace, "unshare", "--uts", "--",
            "sh", "-c", 'hostname "$0" && exec "$@"', self.name, *runas, *argv,
        ]  # fmt: skip

    def start(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        log: Path,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> subprocess.Popen:
        """A long-running process, in its own process group (so it and its children
        can be frozen, killed and accounted together), output to `log`."""
        log.parent.mkdir(parents=True, exist_ok=True)
        output = log.open("ab")
        process = subprocess.Popen(
            self.command(argv, user),
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        self._logs.append(output)
        return process

    def run(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            self.command(argv, user),
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{argv[0]} on {self.name} failed: {(result.stdout + result.stderr)[-3000:]}"
            )
        return result

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`function(*args)` on a thread of this process that has joined this host's
        network: its connections (and those of threads it starts) go from this host."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(
                max_workers=1,
                thread_name_prefix=f"netns-{self.name}",
                initializer=_join_network,
                initargs=(self.namespace,),
            )
        return self._thread.submit(function, *args, **kwargs).result()

    def cut_link(self) -> None:
        """The host's cable pulled: its link goes down, its processes keep running and
        see every connection hang, as on a machine that dropped off the network."""
        _ip("-n", self.namespace, "link", "set", self.link, "down")
        self.link_cut = True

    def signal_all(self, sig: signal.Signals, process: subprocess.Popen | None = None) -> None:
        for each in [process] if process else self.processes:
            if each.poll() is None:
                os.killpg(each.pid, sig)

    def cpu_seconds(self) -> float:
        """CPU (user + system) used so far by every process running on this host, their
        children included: the processes in the sessions it started."""
        sessions = {process.pid for process in self.processes}
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) in sessions:  # field 6 of stat: the session id
                total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / CLOCK_TICKS

    def stop(self, process: subprocess.Popen | None = None, timeout: float = 20) -> None:
        """SIGTERM to the process group(s), SIGKILL after `timeout`."""
        for each in [process] if process else list(self.processes):
            if each.poll() is None:
                os.killpg(each.pid, signal.SIGCONT)
                os.killpg(each.pid, signal.SIGTERM)
                try:
                    each.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(each.pid, signal.SIGKILL)
                    each.wait()
            self._kill_leftovers(each.pid)
            if process is not None:
                self.processes.remove(each)

    @staticmethod
    def _kill_leftovers(session: int) -> None:
        """Children that outlived their group leader (a pool process) go too."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(session, signal.SIGKILL)

    def close(self) -> None:
        # Cut off, a process cannot finish what it has begun: no waiting for it.
        self.stop(timeout=0.5 if self.link_cut else 10)
        if self._thread is not None:
            self._thread.shutdown(wait=False, cancel_futures=True)
        for log in self._logs:
            log.close()


def _join_network(namespace: str) -> None:
    """Move the calling thread (only it) into `namespace`'s network."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {namespace} failed")
    finally:
        os.close(fd)


class Network:
    """Hosts on one bridge, `SUBNET`.0/24; a context manager that removes them all."""

    def __init__(self) -> None:
        self.tag = f"bo{os.getpid()}"
        self.switch = f"{self.tag}-switch"
        self.hosts: dict[str, Host] = {}
        self._lock = threading.Lock()
        _ip("netns", "add", self.switch)
        try:
            _ip("-n", self.switch, "link", "add", "bridge", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "bridge", "up")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_host(self, name: str) -> Host:
        """A new host with the next address; its loopback and link are up."""
        with self._lock:
            number = len(self.hosts) + 2
            namespace = f"{self.tag}-{name}"
            link = f"v{os.getpid()}h{number}"  # at most 15 characters, as Linux wants
            host = Host(name, namespace, f"{SUBNET}.{number}", link)
            self.hosts[name] = host
        _ip("netns", "add", namespace)
        _ip(
            "link", "add", link, "netns", namespace,
            "type", "veth", "peer", "name", f"{link}s", "netns", self.switch,
        )  # fmt: skip
        _ip("-n", self.switch, "link", "set", f"{link}s", "master", "bridge", "up")
        _ip("-n", namespace, "addr", "add", f"{host.address}/24", "dev", link)
        _ip("-n", namespace, "link", "set", link, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        return host

    def close(self) -> None:
        """Every process stopped, every namespace removed (and with it its veth end and
        the bridge); safe to call twice and after a failure half-way."""
        for host in reversed(list(self.hosts.values())):  # the services host last
            try:
                host.close()
            finally:
                subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)
        self.hosts.clear()
        subprocess.run(["ip", "netns", "del", self.switch], capture_output=True)
