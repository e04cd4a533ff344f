"""What a benchmark run found: every wrk run, the summary row of each scenario (the median
of its runs), the targets of issue 5 with a verdict, and the two forms it is written in
(a markdown table on stdout, JSON on disk)."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import nginx, wrk
from benchmarks.scenarios import SCENARIOS, Scenario

LOGGED_SIDE = "baseline+log"  # stages.LOGGED_SIDE (not imported: stages imports nginx, servers)
AGAINST_PREFIX = "devreg@"  # against.PREFIX: the side of run.py --against REV
AGAINST_FIELDS = ("against", "against_requests_per_s", "against_ratio")


@dataclass
class Run:
    """One measured wrk run against one side."""

    scenario: str  # Scenario.key
    devices: int
    side: str  # "devreg" or "baseline"
    index: int
    requests: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    server_cpu_pct: float  # CPU time of the server's processes / wall time (100 = one core)
    load_cpu_pct: float  # the same for wrk plus nginx (the mTLS client)
    core_busy_pct: float  # the server's core(s) busy with anything (every process), same scale
    rss_mb: float  # the biggest serving process, after the run
    peak_rss_mb: float  # its VmHWM: the most it has ever used

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


@dataclass
class Row:
    """A scenario at one scale: the median run of each side, and their ratio."""

    key: str
    scenario: str
    devices: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_pct: float
    load_cpu_pct: float
    peak_rss_mb: float
    baseline_requests_per_s: float
    baseline_p99_ms: float
    baseline_cpu_pct: float
    ratio: float
    errors: int  # over every run of both sides
    runs: int
    target: str = ""
    # issue 14: the baseline that also writes devreg's change log entry (None: not run)
    log_baseline_requests_per_s: float | None = None
    log_ratio: float | None = None
    # issue 15 (run.py --against REV): devreg at REV, "devreg@REV" (None: not run)
    against: str | None = None
    against_requests_per_s: float | None = None
    against_ratio: float | None = None


@dataclass
class Check:
    """One target of issue 5: the measured value, the limit, and whether it is met."""

    target: str
    measured: str
    limit: str
    met: bool | None  # None: not measured in this run


@dataclass
class Report:
    options: dict[str, Any]
    runs: list[Run] = field(default_factory=list)
    imports: list[dict[str, Any]] = field(default_factory=list)
    memory_after: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def rows(self) -> list[Row]:
        made = []
        for scenario in SCENARIOS:
            for devices in sorted({r.devices for r in self.runs if r.scenario == scenario.key}):
                made.append(self._row(scenario, devices))
        return made

    def _row(self, scenario: Scenario, devices: int) -> Row:
        mine = [r for r in self.runs if r.scenario == scenario.key and r.devices == devices]
        ours = median_run([r for r in mine if r.side == "devreg"])
        theirs = median_run([r for r in mine if r.side == "baseline"])
        logged = [r for r in mine if r.side == LOGGED_SIDE]
        log_rate = median_run(logged).requests_per_s if logged else None
        earlier = [r for r in mine if r.side.startswith(AGAINST_PREFIX)]
        rev_rate = median_run(earlier).requests_per_s if earlier else None
        target = target_text(scenario)
        if earlier and scenario.against_target is not None:
            target += f"{', ' if target else ''}vs @rev >= {scenario.against_target:.2f}"
        return Row(
            key=scenario.key,
            scenario=scenario.name,
            devices=devices,
            requests_per_s=ours.requests_per_s,
            p50_ms=ours.p50_ms,
            p99_ms=ours.p99_ms,
            server_cpu_pct=ours.server_cpu_pct,
            load_cpu_pct=ours.load_cpu_pct,
            peak_rss_mb=max(r.peak_rss_mb for r in mine if r.side == "devreg"),
            baseline_requests_per_s=theirs.requests_per_s,
            baseline_p99_ms=theirs.p99_ms,
            baseline_cpu_pct=theirs.server_cpu_pct,
            ratio=ours.requests_per_s / theirs.requests_per_s if theirs.requests_per_s else 0.0,
            errors=sum(r.errors for r in mine),
            runs=len([r for r in mine if r.side == "devreg"]),
            target=target,
            log_baseline_requests_per_s=log_rate,
            log_ratio=ours.requests_per_s / log_rate if log_rate else None,
            against=earlier[0].side if earlier else None,
            against_requests_per_s=rev_rate,
            against_ratio=ours.requests_per_s / rev_rate if rev_rate else None,
        )


NOISE_PCT = 10.0  # more than this of the server's core used by other processes: not quiet


def noise_notes(runs: list[Run], pinned: set[str]) -> list[str]:
    """What the machine's other processes took from the pinned server core, when it is
    more than NOISE_PCT: those numbers are lower than a quiet machine would give."""
    noisy = [r for r in runs if r.scenario in pinned
             and r.core_busy_pct - r.server_cpu_pct > NOISE_PCT]  # fmt: skip
    if not noisy:
        return []
    worst = max(r.core_busy_pct - r.server_cpu_pct for r in noisy)
    return [
        f"the machine was not quiet: in {len(noisy)} of {len(runs)} runs other processes used"
        f" more than {NOISE_PCT:g}% of the server's core (up to {worst:.0f}%); rerun on a"
        " quiet machine before comparing with a target"
    ]


def median_run(runs: list[Run]) -> Run:
    """The run with the median requests/s (the lower middle one for an even count): its
    latencies are reported with it, as measured together."""
    ordered = sorted(runs, key=lambda r: r.requests_per_s)
    return ordered[(len(ordered) - 1) // 2]


def target_text(scenario: Scenario) -> str:
    parts = []
    if scenario.ratio_target is not None:
        parts.append(f"ratio >= {scenario.ratio_target:.2f}")
    if scenario.log_ratio_target is not None:
        parts.append(f"vs +log >= {scenario.log_ratio_target:.2f}")
    if scenario.p99_target_ms is not None:
        parts.append(f"p99 < {scenario.p99_target_ms:g} ms (1M)")
    return ", ".join(parts)


# --- targets ------------------------------------------------------------------------------------

BIG = 1_000_000
SMALL = 10_000
IMPORT_LIMIT_S = 60.0
RSS_LIMIT_MB = 200.0


def checks(report: Report) -> list[Check]:
    rows = {(r.key, r.devices): r for r in report.rows()}
    found: list[Check] = []
    for scenario in SCENARIOS:
        found += _scenario_checks(scenario, rows)
    for imported in report.imports:
        if imported["devices"] >= BIG and imported["store"] == "sqlite":
            seconds = imported["seconds"]
            found.append(Check(f"import of {imported['devices']:,} devices on SQLite"
                               f" ({imported['method']})", f"{seconds:.1f} s",
                               f"< {IMPORT_LIMIT_S:g} s", seconds < IMPORT_LIMIT_S))  # fmt: skip
    for memory in report.memory_after:
        if memory["devices"] >= BIG:
            rss = max(memory["rss_mb"], memory["peak_rss_mb"])
            found.append(Check(f"devreg RSS with {memory['devices']:,} devices after the runs",
                               f"{memory['rss_mb']:.0f} MB (peak {memory['peak_rss_mb']:.0f})",
                               f"< {RSS_LIMIT_MB:g} MB", rss < RSS_LIMIT_MB))  # fmt: skip
    return found


def _scenario_checks(scenario: Scenario, rows: dict[tuple[str, int], Row]) -> list[Check]:
    found: list[Check] = []
    scales = sorted(d for key, d in rows if key == scenario.key)
    if not scales:
        return found
    small, big = scales[0], scales[-1]
    if scenario.ratio_target is not None:
        row = rows[scenario.key, small]
        found.append(Check(f"{scenario.name}, {small:,} devices: devreg / baseline",
                           f"{row.ratio:.2f}", f">= {scenario.ratio_target:.2f}",
                           row.ratio >= scenario.ratio_target))  # fmt: skip
    if scenario.log_ratio_target is not None:
        row = rows[scenario.key, small]
        found.append(Check(f"{scenario.name}, {small:,} devices: devreg / baseline with the"
                           " change log", "-" if row.log_ratio is None else f"{row.log_ratio:.2f}",
                           f">= {scenario.log_ratio_target:.2f}",
                           None if row.log_ratio is None
                           else row.log_ratio >= scenario.log_ratio_target))  # fmt: skip
    if scenario.against_target is not None and rows[scenario.key, small].against:
        row = rows[scenario.key, small]
        ratio = row.against_ratio or 0.0
        found.append(Check(f"{scenario.name}, {small:,} devices: devreg / {row.against}"
                           " (issue 15)", f"{ratio:.2f}", f">= {scenario.against_target:.2f}",
                           ratio >= scenario.against_target))  # fmt: skip
    if scenario.scale_target is not None and big > small:
        share = rows[scenario.key, big].requests_per_s / rows[scenario.key, small].requests_per_s
        found.append(Check(f"{scenario.name}: {big:,} devices / {small:,} devices",
                           f"{share:.2f}", f">= {scenario.scale_target:.2f}",
                           share >= scenario.scale_target))  # fmt: skip
    if scenario.p99_target_ms is not None:
        row = rows[scenario.key, big]
        found.append(Check(f"{scenario.name}, {big:,} devices: p99 at"
                           f" {row.requests_per_s:.0f} req/s", f"{row.p99_ms:.2f} ms",
                           f"< {scenario.p99_target_ms:g} ms",
                           row.p99_ms < scenario.p99_target_ms))  # fmt: skip
    return found


# --- output -------------------------------------------------------------------------------------

HEAD = (
    "scenario", "devices", "req/s", "p50 ms", "p99 ms", "server CPU %", "load CPU %",
    "peak RSS MB", "baseline req/s", "baseline p99 ms", "baseline CPU %", "ratio",
    "baseline+log req/s", "ratio vs +log", "target",
)  # fmt: skip


def markdown(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def table(rows: list[Row]) -> str:
    """HEAD's columns; with devreg@REV runs (--against), its req/s and devreg / devreg@REV
    too, before the target."""
    rev = next((r.against for r in rows if r.against), None)
    if rev is None:
        return markdown(HEAD, [_cells(r) for r in rows])
    head = (*HEAD[:-1], f"{rev} req/s", f"devreg / {rev}", HEAD[-1])
    return markdown(head, [(*_cells(r)[:-1], *_against_cells(r), r.target) for r in rows])


def _cells(r: Row) -> tuple[str, ...]:
    return (
        r.scenario,
        f"{r.devices:,}",
        f"{r.requests_per_s:,.0f}",
        f"{r.p50_ms:.2f}",
        f"{r.p99_ms:.2f}",
        f"{r.server_cpu_pct:.0f}",
        f"{r.load_cpu_pct:.0f}",
        f"{r.peak_rss_mb:.1f}",
        f"{r.baseline_requests_per_s:,.0f}",
        f"{r.baseline_p99_ms:.2f}",
        f"{r.baseline_cpu_pct:.0f}",
        f"{r.ratio:.2f}",
        "—" if r.log_baseline_requests_per_s is None else f"{r.log_baseline_requests_per_s:,.0f}",
        "—" if r.log_ratio is None else f"{r.log_ratio:.2f}",
        r.target,
    )


def _against_cells(r: Row) -> tuple[str, str]:
    return (
        "—" if r.against_requests_per_s is None else f"{r.against_requests_per_s:,.0f}",
        "—" if r.against_ratio is None else f"{r.against_ratio:.2f}",
    )


def checks_table(found: list[Check]) -> str:
    verdict = {True: "met", False: "MISSED", None: "not measured"}
    return markdown(
        ("target (issues 5 and 14)", "measured", "limit", "verdict"),
        [(c.target, c.measured, c.limit, verdict[c.met]) for c in found],
    )


def machine() -> dict[str, Any]:
    model = ""
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    for line in lscpu.splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "load_average_before": os.getloadavg(),
    }


def versions() -> dict[str, str]:
    import uvicorn

    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "uvicorn": uvicorn.__version__,
        "wrk": wrk.version(),
        "nginx": nginx.version(),
        "devreg_commit": rev,
    }


def _result(row: Row) -> dict[str, Any]:
    """A row as JSON; without --against, without its (empty) devreg@REV fields."""
    fields = asdict(row)
    if row.against is None:
        for name in AGAINST_FIELDS:
            del fields[name]
    return fields


def write_json(report: Report, path: Path, meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **meta,
        "options": report.options,
        "results": [_result(r) for r in report.rows()],
        "targets": [asdict(c) for c in checks(report)],
        "imports": report.imports,
        "memory_after": report.memory_after,
        "notes": report.notes,
        "runs": [asdict(r) for r in report.runs],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
