"""Run the benchmark of issue 5: devreg against raw baselines, side by side, in one run.

    .venv/bin/python -m benchmarks.run                      # everything, 3 runs each
    .venv/bin/python -m benchmarks.run --quick --scale 10k  # a short sanity run

Each scenario runs --runs times, alternating devreg and its baseline, with wrk (1 thread,
32 kept-alive connections) over loopback. SQLite scenarios: every server pinned to core 0,
wrk and nginx (the TLS client for the mTLS scenarios) pinned to core 1. PostgreSQL
scenario: 2 worker processes per side, nothing pinned. devreg runs with rate limits and
the access log off; its SQLite store is durable (`synchronous=FULL`), the baselines' is
not (`synchronous=NORMAL`), as issue 5 sets the targets. Prints the table (medians) and
the targets, writes JSON (with every run) and a PNG chart. Exits 1 if any request failed.

`--against REV` adds devreg at REV (benchmarks/against.py) as one more side of the
scenarios with an `against_target` (F PATCH and GET, issue 15), round by round, and the
ratio devreg / devreg@REV; the current side then runs this checkout's src/ (PYTHONPATH).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmarks import against, chart
from benchmarks.report import (
    Report,
    Run,
    checks,
    checks_table,
    machine,
    noise_notes,
    table,
    versions,
    write_json,
)
from benchmarks.scenarios import SCENARIOS, Scenario, Side, selected
from benchmarks.servers import REPO, busy_seconds
from benchmarks.stages import (
    LOAD_CORE,
    SERVER_CORE,
    Stage,
    postgres_reachable,
    postgres_stage,
    sqlite_stage,
)
from benchmarks.wrk import Load, run_wrk

SCALES = {"10k": [10_000], "1m": [1_000_000], "both": [10_000, 1_000_000]}
POSTGRES_DEVICES = 10_000  # the PostgreSQL scenario runs at the small scale only
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
RESULTS = REPO / "benchmarks" / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario and side (3)")
    parser.add_argument("--seconds", type=float, default=10, help="per run (10)")
    parser.add_argument("--warmup", type=float, default=1, help="seconds before each run, 0 = none")
    parser.add_argument("--scale", choices=sorted(SCALES), default="both",
                        help="devices stored: 10k, 1m or both (both)")  # fmt: skip
    parser.add_argument("--devices", type=int, action="append",
                        help="instead of --scale: this many devices (repeatable)")  # fmt: skip
    parser.add_argument("--only", action="append", default=[],
                        help="scenarios whose key or name contains this (repeatable)")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="a short sanity run: 1 run of 2 s each, 1 s warm-up")  # fmt: skip
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES,
                        help="PostgreSQL to create the benchmark's databases in")  # fmt: skip
    parser.add_argument("--against", metavar="REV",
                        help="also run devreg at git revision REV (F PATCH, F GET),"
                             " round by round, and report devreg / devreg@REV")  # fmt: skip
    parser.add_argument("--json", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--png", type=Path, default=RESULTS / "latest.png")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.seconds, args.warmup = 1, 2.0, 1.0
    return args


def missing_tools() -> list[str]:
    return [tool for tool in ("wrk", "nginx", "taskset") if _which(tool) is None]


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


# --- measuring ----------------------------------------------------------------------------------


def measure(scenario: Scenario, side: Side, stage: Stage, index: int, args: argparse.Namespace,
            workdir: Path) -> Run:  # fmt: skip
    """A warm-up, then one measured wrk run, with the server's and the load side's CPU."""
    cores = LOAD_CORE if scenario.store == "sqlite" else None
    server = side.tls_server if scenario.uses_tls and side.tls_server else side.server
    if args.warmup:
        run_wrk(scenario.load(side), args.warmup, cores, workdir)
    load: Load = scenario.load(side)
    nginx_before = side.tls_client.cpu_seconds() if scenario.uses_tls and side.tls_client else 0
    server_before, busy_before = server.cpu_seconds(), busy_seconds(server.cores)
    started = time.monotonic()
    result = run_wrk(load, args.seconds, cores, workdir)
    wall = time.monotonic() - started
    server_cpu = server.cpu_seconds() - server_before
    busy = busy_seconds(server.cores) - busy_before
    nginx_cpu = (
        side.tls_client.cpu_seconds() - nginx_before
        if scenario.uses_tls and side.tls_client
        else 0.0
    )
    rss, peak = server.memory_mb()
    return Run(
        scenario=scenario.key,
        devices=stage.devices,
        side=side.name,
        index=index,
        requests=result.requests,
        seconds=result.seconds,
        requests_per_s=result.requests_per_s,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        non_2xx=result.non_2xx,
        socket_errors=result.socket_errors,
        server_cpu_pct=100 * server_cpu / wall,
        load_cpu_pct=100 * (result.wrk_cpu_s + nginx_cpu) / wall,
        core_busy_pct=100 * busy / wall,
        rss_mb=rss,
        peak_rss_mb=peak,
    )


def run_scenarios(scenarios: list[Scenario], stage: Stage, report: Report,
                  args: argparse.Namespace, workdir: Path) -> None:  # fmt: skip
    for scenario in scenarios:
        for index in range(args.runs):
            sides = [stage.devreg, stage.baseline]
            if scenario.log_baseline and stage.baseline_log is not None:
                sides.append(stage.baseline_log)  # issue 14: with the change log's INSERT
            if scenario.against_target is not None and stage.against is not None:
                sides.append(stage.against)  # issue 15: devreg at --against REV
            for side in sides:  # alternating, run after run
                run = measure(scenario, side, stage, index, args, workdir)
                report.runs.append(run)
                print(
                    f"  {scenario.key:12} {side.name:12} run {index + 1}: "
                    f"{run.requests_per_s:9,.0f} req/s  p99 {run.p99_ms:6.2f} ms  "
                    f"server CPU {run.server_cpu_pct:4.0f}%  load CPU {run.load_cpu_pct:4.0f}%  "
                    f"server core(s) busy {run.core_busy_pct:4.0f}%"
                    + (f"  ERRORS {run.errors}" if run.errors else ""),
                    flush=True,
                )


def record_stage(stage: Stage, store: str, report: Report) -> None:
    if stage.imported is not None:
        report.imports.append({
            "store": store, "devices": stage.devices, "seconds": stage.imported.seconds,
            "method": stage.imported.method,
            "reported_seconds": stage.imported.reported_seconds,
            "seconds_to_seed_both_sides": stage.seconds_to_seed,
        })  # fmt: skip
    rss, peak = stage.devreg.server.memory_mb()
    report.memory_after.append({"store": store, "devices": stage.devices, "rss_mb": rss,
                                "peak_rss_mb": peak})  # fmt: skip
    print(f"  devreg after the runs: RSS {rss:.1f} MB, peak {peak:.1f} MB", flush=True)


def run_all(args: argparse.Namespace, report: Report, workdir: Path,
            source: Path | None = None) -> None:  # fmt: skip
    """`source`: the checkout of --against (its side joins the SQLite stages)."""
    scenarios = selected(args.only)
    on_sqlite = [s for s in scenarios if s.store == "sqlite"]
    on_postgres = [s for s in scenarios if s.store == "postgres"]
    scales = args.devices or SCALES[args.scale]
    for devices in scales if on_sqlite else []:
        print(f"SQLite, {devices:,} devices", flush=True)
        stage_dir = workdir / f"sqlite-{devices}"
        with sqlite_stage(devices, stage_dir) as stage, ExitStack() as rev:
            if source is not None and any(s.against_target is not None for s in on_sqlite):
                name = against.PREFIX + args.against
                stage.against, imports = rev.enter_context(
                    against.against_side(source, name, devices, stage_dir / "against",
                                         SERVER_CORE)
                )  # fmt: skip
                _note_once(report, f"{name} runs devreg from {imports}")
            run_scenarios(on_sqlite, stage, report, args, workdir)
            record_stage(stage, "sqlite", report)
    if on_postgres:
        devices = min(scales) if args.devices else POSTGRES_DEVICES
        why = postgres_reachable(args.postgres_url)
        if why is not None:
            report.notes.append(f"PostgreSQL scenario not run: {why}")
            print(f"PostgreSQL not reachable at {args.postgres_url}: {why}", file=sys.stderr)
            return
        print(f"PostgreSQL, {devices:,} devices", flush=True)
        with postgres_stage(devices, workdir / "postgres", args.postgres_url) as stage:
            run_scenarios(on_postgres, stage, report, args, workdir)
            record_stage(stage, "postgres", report)


def _note_once(report: Report, note: str) -> None:
    if note not in report.notes:
        report.notes.append(note)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = missing_tools()
    if missing:
        print(f"missing: {', '.join(missing)} (apt-get install -y wrk nginx-light util-linux)",
              file=sys.stderr)  # fmt: skip
        return 2
    commit = None
    if args.against:
        try:
            commit = against.resolve(args.against)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
        # the current side runs this checkout's code, whatever the venv's install points to
        os.environ["PYTHONPATH"] = str(REPO / "src")
    meta: dict[str, Any] = {"machine": machine(), "versions": versions()}
    if commit is not None:
        meta["against"] = {"rev": args.against, "commit": commit}
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    report = Report(options=options)
    report.notes.append(
        "SQLite scenarios: servers pinned to core 0, wrk and nginx to core 1."
        " PostgreSQL scenario: nothing pinned (2 workers per side)."
    )
    with tempfile.TemporaryDirectory(prefix="devreg-bench-") as tmp, ExitStack() as stack:
        source = None
        if commit is not None:
            source = stack.enter_context(against.checkout(commit))
            here = against.imports_from(dict(os.environ))
            report.notes.append(f"{against.PREFIX}{args.against} is commit {commit[:12]};"
                                f" devreg runs devreg from {here}")  # fmt: skip
        run_all(args, report, Path(tmp), source)
    report.notes += noise_notes(report.runs, {s.key for s in SCENARIOS if s.store == "sqlite"})
    rows = report.rows()
    print()
    print(table(rows))
    print()
    print(checks_table(checks(report)))
    for note in report.notes:
        print(f"note: {note}")
    write_json(report, args.json, meta)
    title = (f"devreg vs raw baselines, median of {args.runs} run(s) of {args.seconds:g} s,"
             f" {meta['machine']['cpu']} x{meta['machine']['cores']}")  # fmt: skip
    chart.draw(rows, args.png, title)
    print(f"written {args.json} and {args.png}")
    failed = sorted({f"{r.scenario} ({r.side}, {r.devices})" for r in report.runs
                     if r.errors or not r.requests})  # fmt: skip
    if failed:
        print(f"errors or no answers in: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
