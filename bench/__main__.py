"""`python -m bench`: bulkops throughput and latency, each beside a baseline from the same run.

Figures on shared machines are noisy, so every throughput is reported with the time of
the fastest raw dump of the same JSON bodies the database can do (SQLite: one SELECT
streamed to a file; PostgreSQL: COPY ... TO STDOUT), measured minutes apart.

    python -m bench                              # 100k and 1M resources, SQLite
    DATABASE_URL=postgres://u:p@127.0.0.1/postgres \\
        python -m bench --workers 1 2 4 --broker redis://127.0.0.1:6379/0
                                                 # scale-out: speed-up against 1 worker
    python -m bench --tiny                       # seconds; what the smoke test runs
    sudo python -m bench --hosts 1 2 4           # worker hosts in network namespaces,
                                                 # speed-up and CPU per host (bench/hosts.py)

Per store size: the raw dump baseline; system exports (plain, and with a `_typeFilter`
that keeps about 10% of the Observations) and Group exports at each worker count;
then the web tier alone under closed-loop load at each concurrency (token endpoint,
kick-off, status poll; bench/load.py), each beside the web floor at the same
concurrency (SMART discovery: no database, no key), "x base" being the p99 ratio.
With the first worker count, a `$export-v4` downloaded as partial manifests list its
files, beside the same export downloaded once its manifest is complete: time to the first
and the last byte (bench/partial.py). Last, generate_fhir and load_fhir rates, and a
Bulk Submit import of the same resources at each worker count, beside a raw insert of
the same rows (bench/loading.py, bench/submit_import.py).

Everything runs as real processes on loopback: gunicorn, `celery -A bulkops worker`,
the reference client. Stores are generated once per size and reused (see --var-root).
The bench's own requests reach those loopback servers through bulkops' guarded client
with private addresses allowed: it is run from a shell, against servers it started.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from operator import itemgetter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.hosts import host_scaling, print_hosts_table  # noqa: E402 - needs ROOT on sys.path
from bench.loading import loading_rates  # noqa: E402
from bench.measure import (  # noqa: E402
    POLL_SECONDS,
    BenchStore,
    kickoff_latency,
    profiled,
    purge_tasks,
    raw_dump,
    run_export,
    search_latency,
    status_latency,
    token_latency,
    web_floor,
    web_pid,
)
from bench.partial import partial_manifest_rows  # noqa: E402
from tests.processes import celery_worker_process, web_server  # noqa: E402

RESOURCES_PER_PATIENT = 146  # what generate_fhir averages (seed 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--resources", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument(
        "--broker", default="", help="Celery broker URL (e.g. redis://127.0.0.1:6379/0)"
    )
    parser.add_argument("--load-seconds", type=float, default=5.0, help="per load step")
    parser.add_argument(
        "--loading", type=int, default=100_000, help="resources for the loading rates (0: skip)"
    )
    parser.add_argument(
        "--var-root", type=Path, default=Path(tempfile.gettempdir()) / "bulkops-bench"
    )
    parser.add_argument("--json", type=Path, default=ROOT / "var" / "bench-results.json")
    parser.add_argument(
        "--profile",
        type=Path,
        help="folder for py-spy profiles (speedscope) of the workers during each system "
        "export and of the web server under the largest token load",
    )
    parser.add_argument("--tiny", action="store_true", help="a few hundred resources, quick")
    parser.add_argument(
        "--hosts",
        type=int,
        nargs="+",
        help="only this: a system export with each number of worker hosts, each a network "
        "namespace around a services host of its own (needs root)",
    )
    parser.add_argument(
        "--hosts-resources", type=int, default=50_000, help="store size for --hosts"
    )
    args = parser.parse_args()
    if args.tiny:
        args.resources, args.workers, args.concurrency, args.loading = [300], [1], [2], 300
        args.load_seconds = 0.5
    # The bench's own requests go through bulkops' guarded client (bulkops.outbound),
    # which reads bulkops settings (BULKOPS_OUTBOUND_PROXY); their state stays here.
    os.environ.setdefault("BULKOPS_VAR_DIR", str(args.var_root))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bulkops.settings")
    if args.hosts:
        hosts_bench(args)
        return

    results: list[dict[str, Any]] = []
    for target in args.resources:
        patients = max(2, round(target / RESOURCES_PER_PATIENT))
        results += store_benches(BenchStore.prepare(args.var_root, patients, args.broker), args)
    if args.loading:
        patients = max(2, round(args.loading / RESOURCES_PER_PATIENT))
        results += loading_rates(
            args.var_root, os.environ.get("DATABASE_URL", ""), patients, args.workers, args.broker
        )
    print_table(results)
    write_results(results, args)


def hosts_bench(args: argparse.Namespace) -> None:
    args.var_root.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="hosts-", dir=args.var_root))
    results = host_scaling(args.hosts, args.hosts_resources, work_dir)
    print_hosts_table(results)
    write_results(results, args)


def write_results(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """The load average at the end (on the screen and in the results), then the JSON."""
    load = os.getloadavg()
    results.append({"bench": "load average at the end (1/5/15 min)", "load_average": load})
    print(f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"\nresults written to {args.json}")


def store_benches(store: BenchStore, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Baseline, exports at each worker count, then the web tier under load."""
    baseline, baseline_bytes = raw_dump(store)
    results: list[dict[str, Any]] = [
        {
            "bench": "raw dump baseline",
            "db": store.vendor,
            "resources": store.resources,
            "seconds": baseline,
            "bytes": baseline_bytes,
        }
    ]
    first: float | None = None
    for workers in args.workers:
        purge_tasks(store.env)
        # The workers are configured as an installation of this many would be: a Group
        # export is cut for them (BULKOPS_EXPORT_WORKERS, README).
        env = {**store.env, "BULKOPS_EXPORT_WORKERS": str(workers)}
        with (
            celery_worker_process(env, concurrency=workers) as worker,
            web_server(store.env, workers=2) as base,
            profiled(worker.pid, profile_path(args, store, f"export-{workers}-workers")),
        ):
            # A small export first: the worker has booted and is consuming when the
            # clock starts, and its first task's imports are not timed.
            run_export(store, base, "/$export", (("_type", "Organization"),))
            row = run_export(store, base, "/$export")
            first = first or row["seconds"]
            row.update(
                bench=f"system export, {workers} worker(s)",
                ratio_to_baseline=row["seconds"] / baseline,
                speed_up=first / row["seconds"],
            )
            results.append(row)
            results.append(filtered_export(store, base, workers, unfiltered=row))
            if workers == args.workers[0]:
                results.extend(partial_manifest_rows(store, base))
            if store.group_id:
                # The better of two, as the raw dump is: the first may read from disk the
                # compartment index pages no export before it touched (0.49 s against
                # 0.36 s for the 1M store's group after the page cache was dropped).
                runs = [
                    run_export(store, base, f"/Group/{store.group_id}/$export") for _ in range(2)
                ]
                group = min(runs, key=itemgetter("seconds"))
                group["run_seconds"] = [run["seconds"] for run in runs]
                group.update(
                    bench=f"Group export, {store.group_size} members, {workers} worker(s)",
                    store_resources=store.resources,
                    # Its targets: per resource within 1.5 x the system export, per byte
                    # within 2 x the raw dump (the dump's rate applied to its own bytes).
                    vs_system_per_resource=per_item(group, "resources")
                    / per_item(row, "resources"),
                    ratio_to_baseline=per_item(group, "bytes") / (baseline / baseline_bytes),
                )
                results.append(group)
    with web_server(store.env, workers=2) as base:
        # Warm up first: every worker imports its URLconf and every thread opens its
        # database connection on its first request, which is not what is measured.
        token_latency(store, base, 16, 1.0)
        floors = {}
        for measure in (web_floor, token_latency, kickoff_latency, status_latency, search_latency):
            for concurrency in args.concurrency:
                out = None
                if measure is token_latency and concurrency == max(args.concurrency):
                    out = profile_path(args, store, f"token-{concurrency}-concurrent")
                with profiled(web_pid(base), out):
                    row = measure(store, base, concurrency, args.load_seconds)
                p99 = row["latency_ms"]["p99"]
                if measure is web_floor:
                    floors[concurrency] = p99
                else:
                    row["ratio_to_baseline"] = p99 / floors[concurrency]
                results.append(row)
    purge_tasks(store.env)
    return results


def per_item(row: dict[str, Any], unit: str) -> float:
    """Seconds an export spent per resource or per byte."""
    return row["seconds"] / max(1, row[unit])


# Generated Observations are six vital signs in equal shares; heart rates are uniform
# over 55-100/min, so those of 73 or more are 60% of a sixth: 10% of the Observations.
TYPE_FILTER = (("_typeFilter", "Observation?code=http://loinc.org|8867-4&value-quantity=ge73"),)


def filtered_export(
    store: BenchStore, base: str, workers: int, unfiltered: dict[str, Any]
) -> dict[str, Any]:
    """The system export again, its Observations filtered. It still reads every stored
    resource, so its rate is stored resources per second, set against the unfiltered
    export's (the target: at least half as fast)."""
    row = run_export(store, base, "/$export", TYPE_FILTER)
    row.update(
        bench=f"filtered system export, {workers} worker(s)",
        scanned=store.resources,
        scanned_per_s=store.resources / row["seconds"],
        vs_unfiltered=unfiltered["seconds"] / row["seconds"],
    )
    return row


def profile_path(args: argparse.Namespace, store: BenchStore, what: str) -> Path | None:
    if args.profile is None:
        return None
    args.profile.mkdir(parents=True, exist_ok=True)
    return args.profile / f"{store.vendor}-{store.resources}-{what}.speedscope.json"


def print_table(results: list[dict[str, Any]]) -> None:
    print(
        f"\n{'bench':<44}{'db':<12}{'resources':>11}{'seconds':>9}{'res/s':>10}"
        f"{'MB/s':>7}{'x base':>8}{'speedup':>8}{'worker MB':>10}{'web MB':>8}"
        "  latency p50/p95/p99 ms; CPU ms per request (web/db/load generator)"
    )
    for row in results:
        print(
            f"{row['bench']:<44}{row.get('db', ''):<12}{row.get('resources', 0):>11,}"
            f"{row.get('seconds', 0):>9.2f}{row.get('resources_per_s', 0):>10,.0f}"
            f"{row.get('mb_per_s', 0):>7.1f}{row.get('ratio_to_baseline', 0):>8.2f}"
            f"{row.get('speed_up', 0):>8.2f}"
            f"{row.get('worker_peak_rss_mb', 0):>10.0f}{row.get('web_peak_rss_mb', 0):>8.0f}"
            + web_columns(row)
            + filter_columns(row)
            + group_columns(row)
            + download_columns(row)
            + seen_columns(row)
        )


def seen_columns(row: dict[str, Any]) -> str:
    """When the polling client saw the manifest: `seconds` ends at the job's completion
    (bench.measure.run_export)."""
    if "seen_seconds" not in row:
        return ""
    return f"  (manifest seen at {row['seen_seconds']:.2f} s, polled every {POLL_SECONDS} s)"


def download_columns(row: dict[str, Any]) -> str:
    if "first_byte_s" not in row:
        return ""
    columns = f"  first byte {row['first_byte_s']:.2f} s, last byte {row['last_byte_s']:.2f} s"
    if "last_byte_vs_wait" in row:
        columns += f"; {row['last_byte_vs_wait']:.2f} x sooner to the last byte than waiting"
    return columns


def filter_columns(row: dict[str, Any]) -> str:
    if "vs_unfiltered" not in row:
        return ""
    return (
        f"  scanned {row['scanned']:,} stored at {row['scanned_per_s']:,.0f}/s: "
        f"{row['vs_unfiltered']:.2f} x the unfiltered rate"
    )


def group_columns(row: dict[str, Any]) -> str:
    if "vs_system_per_resource" not in row:
        return ""
    runs = ", ".join(f"{seconds:.3f}" for seconds in row["run_seconds"])
    return (
        f"  {row['vs_system_per_resource']:.2f} x the system export's time per resource; "
        f"x base per byte written; the better of {runs} s"
    )


def web_columns(row: dict[str, Any]) -> str:
    latency = row.get("latency_ms")
    if not latency:
        return ""
    cpu = "/".join(f"{ms:.2f}" for ms in row["cpu_ms_per_request"].values())
    return (
        f"  {latency['p50']:.1f}/{latency['p95']:.1f}/{latency['p99']:.1f} "
        f"({row['requests_per_s']:.0f} req/s); {cpu}"
    )


if __name__ == "__main__":
    main()
