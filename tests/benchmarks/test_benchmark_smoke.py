"""The benchmark harness cannot rot: run every scenario for a second at small scale.

No timing thresholds: this checks that each scenario runs, is answered without errors,
and is reported with its baseline ratio, in the table and in the JSON.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.run import SCENARIOS

from tests.conftest import service_missing

REPO = Path(__file__).resolve().parents[2]


def test_every_scenario_runs_and_is_reported(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        service_missing("wrk is not installed (apt-get install -y wrk): the benchmark needs it")
    report = tmp_path / "latest.json"
    argv = ["--seconds", "1", "--devices", "200", "--warmup", "0", "--json", str(report)]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = {r["scenario"]: r for r in json.loads(report.read_text())["results"]}
    assert set(results) == set(SCENARIOS)
    for scenario, result in results.items():
        assert result["requests_per_s"] > 0, scenario
        assert result["errors"] == 0, scenario
        assert result["ratio"] > 0, scenario
        assert result["peak_rss_mb"] > 0, scenario
        assert result["p99_ms"] >= result["p50_ms"] > 0, scenario
        row = next(line for line in done.stdout.splitlines() if line.startswith(f"| {scenario} |"))
        assert len(row.strip("|").split("|")) == 7, row


def test_the_command_documents_its_options() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    for option in ("--seconds", "--devices", "--json"):
        assert option in done.stdout
