"""A small closed-loop HTTP load generator on asyncio: C clients, each sending its next
request as soon as the previous answer arrives, for a fixed time.

One event loop keeps the generator's own CPU cost low (it shares the machine with the
server under test): no threads contending for the GIL, requests prepared before the
clock starts (signed assertions are made up front), one plain HTTP/1.1 connection per
request as a token client would open.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class LoadResult:
    latencies_ms: list[float]
    statuses: dict[int, int]
    seconds: float
    answers: list[tuple[int, dict[str, str]]]

    def summary(self, label: str, expected: int) -> dict[str, Any]:
        cuts = (
            statistics.quantiles(self.latencies_ms, n=100)
            if len(self.latencies_ms) > 1
            else self.latencies_ms * 99
        )
        return {
            "bench": label,
            "requests": len(self.latencies_ms),
            "errors": sum(n for status, n in self.statuses.items() if status != expected),
            "requests_per_s": len(self.latencies_ms) / self.seconds,
            "latency_ms": {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98]},
        }


async def _send(request: Request) -> tuple[int, dict[str, str]]:
    parts = urllib.parse.urlsplit(request.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    head = [f"{request.method} {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    head += [f"{name}: {value}" for name, value in request.headers.items()]
    if request.body or request.method == "POST":
        head.append(f"Content-Length: {len(request.body)}")
    writer.write("\r\n".join(head).encode() + b"\r\n\r\n" + request.body)
    await writer.drain()
    response = await reader.read()  # Connection: close, so the answer ends at EOF
    writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    header_block = rest.partition(b"\r\n\r\n")[0].decode("latin-1")
    headers = {}
    for line in header_block.split("\r\n"):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers


def run_load(
    next_request: Callable[[], Request | None], concurrency: int, seconds: float
) -> LoadResult:
    """Drive `concurrency` clients for `seconds` (or until `next_request` returns None)."""
    return asyncio.run(_run(next_request, concurrency, seconds))


async def _run(
    next_request: Callable[[], Request | None], concurrency: int, seconds: float
) -> LoadResult:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    answers: list[tuple[int, dict[str, str]]] = []
    started = time.perf_counter()
    deadline = started + seconds

    async def client() -> None:
        while time.perf_counter() < deadline:
            request = next_request()
            if request is None:
                return
            sent = time.perf_counter()
            status, headers = await _send(request)
            latencies.append((time.perf_counter() - sent) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
            answers.append((status, headers))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return LoadResult(latencies, statuses, time.perf_counter() - started, answers)
