"""The benchmark harness cannot rot: run every scenario for a second at small scale.

No timing thresholds: this checks that each scenario runs against devreg and its baseline,
is answered without errors, and is reported in the table, the JSON and the PNG.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.report import HEAD
from benchmarks.scenarios import SCENARIOS

from tests.conftest import REQUIRE_SERVICES, service_missing

REPO = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get(
    "DEVREG_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _missing_tools() -> list[str]:
    return [
        tool
        for tool in ("wrk", "nginx", "taskset")
        if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin:/sbin") is None
    ]


def test_every_scenario_runs_and_is_reported(tmp_path: Path) -> None:
    missing = _missing_tools()
    if missing:
        service_missing(
            f"{', '.join(missing)} not installed (apt-get install -y wrk nginx-light):"
            " the benchmark drives its load with them"
        )
    report, png = tmp_path / "latest.json", tmp_path / "latest.png"
    argv = ["--devices", "200", "--runs", "1", "--seconds", "1", "--warmup", "0"]
    argv += ["--json", str(report), "--png", str(png), "--postgres-url", POSTGRES_URL]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(report.read_text())
    results = {r["key"]: r for r in document["results"]}
    expected = {s.key for s in SCENARIOS}
    if "pg-patch" not in results:
        assert any("PostgreSQL" in note for note in document["notes"]), document["notes"]
        if REQUIRE_SERVICES:
            raise AssertionError(f"the PostgreSQL scenario did not run: {document['notes']}")
        expected.discard("pg-patch")
    assert set(results) == expected
    for key, result in results.items():
        assert result["requests_per_s"] > 0, key
        assert result["baseline_requests_per_s"] > 0, key
        assert result["errors"] == 0, key
        assert result["ratio"] > 0, key
        assert result["peak_rss_mb"] > 0, key
        assert result["server_cpu_pct"] > 0, key
        assert result["p99_ms"] >= result["p50_ms"] > 0, key
        row = next(
            line
            for line in done.stdout.splitlines()
            if line.startswith(f"| {result['scenario']} |")
        )
        assert len(row.strip("|").split("|")) == len(HEAD), row
        if any(s.key == key and s.log_baseline for s in SCENARIOS):
            assert result["log_baseline_requests_per_s"] > 0, key
            assert result["log_ratio"] > 0, key
    logged = {s.key for s in SCENARIOS if s.log_baseline} & expected
    # one run per side: devreg, the baseline, and the baseline with the change log
    assert len(document["runs"]) == 2 * len(expected) + len(logged)
    assert {r["side"] for r in document["runs"] if r["scenario"] == "f-patch"} == {
        "devreg",
        "baseline",
        "baseline+log",
    }
    assert document["targets"], "the targets of issue 5 are reported"
    assert document["imports"] and document["memory_after"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_command_documents_its_options() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    for option in ("--runs", "--seconds", "--scale", "--devices", "--only", "--quick", "--json",
                   "--against"):  # fmt: skip
        assert option in done.stdout


def test_against_a_revision_adds_its_side_and_removes_its_checkout(tmp_path: Path) -> None:
    """--against HEAD: devreg at HEAD (a detached worktree, its own data dir) is run beside
    the current build for F PATCH and GET, its ratio reported; the worktree is gone after."""
    missing = _missing_tools()
    if missing:
        service_missing(f"{', '.join(missing)} not installed: the load is driven with wrk")
    report = tmp_path / "latest.json"
    argv = ["--against", "HEAD", "--only", "f-patch", "--only", "f-get", "--devices", "200"]
    argv += ["--runs", "1", "--seconds", "1", "--warmup", "0", "--json", str(report)]
    argv += ["--png", str(tmp_path / "latest.png")]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", *argv],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(report.read_text())
    assert document["against"]["rev"] == "HEAD"
    results = {r["key"]: r for r in document["results"]}
    assert set(results) == {"f-patch", "f-get"}
    for key, result in results.items():
        assert result["against"] == "devreg@HEAD", key
        assert result["against_requests_per_s"] > 0 and result["against_ratio"] > 0, key
        assert result["errors"] == 0, key
    assert "| devreg / devreg@HEAD |" in done.stdout
    assert any("devreg@HEAD (issue 15)" in t["target"] for t in document["targets"])
    listed = subprocess.run(["git", "-C", str(REPO), "worktree", "list"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "devreg-against-" not in listed


def test_the_change_log_reads_run_and_are_reported(tmp_path: Path) -> None:
    """benchmarks.change_log at a small size: seeded (its chain checked with devreg's own
    code), served, measured, written; exit 1 only says a p99 target was missed."""
    missing = _missing_tools()
    if missing:
        service_missing(f"{', '.join(missing)} not installed: the reads are driven with wrk")
    report = tmp_path / "change_log.json"
    argv = ["--entries", "20000", "--device-entries", "200", "--devices", "20"]
    argv += ["--seconds", "1", "--rate", "50", "--json", str(report)]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.change_log", *argv],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stdout + done.stderr
    document = json.loads(report.read_text())
    assert document["seeded"]["entries"] == 20_000
    assert document["seeded"]["device_entries"] == 200
    assert [m["name"].split(",")[0] for m in document["measured"]] == [
        "history", "history", "as-of",
    ]  # fmt: skip
    for measured in document["measured"]:
        assert measured["errors"] == 0 and measured["requests_per_s"] > 0, measured
    assert len(document["statements"]) == 5


def test_the_change_logs_cost_at_the_store_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.change_log_cost", "--devices", "200",
         "--patches", "500"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "change_log rows written: 500" in done.stdout
