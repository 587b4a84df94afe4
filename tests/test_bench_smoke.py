"""`python -m bench` keeps working: a tiny run through every measurement."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.processes import ROOT


def test_bench_runs_end_to_end_at_tiny_size(tmp_path):
    out = tmp_path / "results.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--tiny",
            "--var-root",
            str(tmp_path / "stores"),
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["bench"]: row for row in json.loads(out.read_text())}
    baseline = rows["raw dump baseline"]
    export = rows["system export, 1 worker(s)"]
    assert export["resources"] == baseline["resources"] > 0
    assert export["ratio_to_baseline"] > 0 and export["worker_peak_rss_mb"] > 0
    filtered = rows["filtered system export, 1 worker(s)"]
    assert 0 < filtered["resources"] < export["resources"]
    assert filtered["scanned"] == baseline["resources"] and filtered["vs_unfiltered"] > 0
    group = rows["Group export, 2 members, 1 worker(s)"]
    assert group["resources"] > 0
    # The better of two runs, as the raw dump is; both are kept.
    assert len(group["run_seconds"]) == 2 and group["seconds"] == min(group["run_seconds"])
    waited = rows["v4 export, download after manifest"]
    early = rows["v4 export, download from partial pages"]
    assert waited["files"] == early["files"] > 0 and waited["mb"] == early["mb"] > 0
    assert 0 < early["first_byte_s"] <= early["last_byte_s"] and early["last_byte_vs_wait"] > 0
    assert rows["SMART discovery (web floor), 2 concurrent"]["errors"] == 0
    for web in ("token endpoint", "kick-off", "status poll"):
        row = rows[f"{web}, 2 concurrent"]
        assert row["requests"] > 0 and row["errors"] == 0, row
        assert row["ratio_to_baseline"] > 0 and row["cpu_ms_per_request"]["web"] > 0, row
    loaded = [row for row in rows.values() if row["bench"].startswith(("generate", "load_fhir"))]
    # The baseline is COPY on PostgreSQL and executemany on SQLite.
    (baseline,) = [row for name, row in rows.items() if name.startswith("raw insert baseline")]
    assert [row["resources"] for row in loaded] == [baseline["resources"]] * 2
    # A Bulk Submit import loads the same resources, every file of it.
    imported = rows["Bulk Submit import, 1 worker(s)"]
    assert imported["resources"] == baseline["resources"] and imported["ratio_to_baseline"] > 0
    assert "system export" in result.stdout
