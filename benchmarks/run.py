"""Run the benchmark: devreg's dialect F against the raw baseline, side by side, one run.

    .venv/bin/python -m benchmarks.run [--seconds N] [--devices N] [--json PATH]

Each server is a subprocess pinned to core 0, wrk (1 thread, 32 kept-alive connections)
is pinned to core 1. devreg runs with rate limits and the access log off and its mTLS and
EST listeners closed; its SQLite store is durable (`synchronous=FULL`), the baseline's is
not (`synchronous=NORMAL`), as issue 5 sets the target. Prints a table and writes it as
JSON (default benchmarks/results/latest.json).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEVREG = str(BIN / "devreg")
SERVER_CORE = "0"
WRK_CORE = "1"
CONNECTIONS = 32
MAX_IDS_IN_SCRIPT = 10_000  # the ids a wrk script cycles through

# scenario name -> (server, method, the baseline scenario it is compared with)
SCENARIOS = {
    "F PATCH /devices/{id}": ("devreg", "PATCH", "baseline PATCH"),
    "F GET /devices/{id}": ("devreg", "GET", "baseline GET"),
    "baseline PATCH": ("baseline", "PATCH", "baseline PATCH"),
    "baseline GET": ("baseline", "GET", "baseline GET"),
}


@dataclass
class Result:
    scenario: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    peak_rss_mb: float
    requests: int
    errors: int  # non-2xx answers plus socket errors: must be 0 for a valid run
    baseline_requests_per_s: float = 0.0
    ratio: float = 0.0


# --- servers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited {process.returncode}:\n{log.read_text()}")
        try:
            http(url)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not answer {url}:\n{log.read_text()}")


@contextmanager
def serving(
    argv: list[str], env: dict[str, str], ready_path: str, log: Path
) -> Iterator[tuple[str, int]]:
    """Run a server pinned to the server core; yields (base URL, pid)."""
    port = free_port()
    argv = [a.replace("{port}", str(port)) for a in argv]
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *argv],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, base + ready_path, log)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def devreg_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVREG_")}
    env.update(DEVREG_DATA_DIR=str(data_dir), DEVREG_RATE_LIMIT="0", DEVREG_ACCESS_LOG="0")
    return env


# --- seeding ------------------------------------------------------------------------------


def seed_devreg(data_dir: Path, count: int) -> tuple[dict[str, str], list[str]]:
    """`devreg init`, one account from the CLI, `count` live devices through the store."""
    env = devreg_env(data_dir)
    subprocess.run([DEVREG, "init"], env=env, check=True, capture_output=True)
    done = subprocess.run(
        [DEVREG, "account", "create", "--name", "bench", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    account = json.loads(done.stdout)
    ids = asyncio.run(_insert_devices(data_dir, bytes.fromhex(account["account_id"][4:]), count))
    return account, ids


async def _insert_devices(data_dir: Path, account_id: bytes, count: int) -> list[str]:
    from devreg.core.clock import now_us
    from devreg.core.ids import new_id
    from devreg.core.records import Device, DeviceStatus
    from devreg.storage import open_store

    store = await open_store(None, data_dir)
    try:
        profile = await store.default_profile(account_id)
        assert profile is not None
        ids = []
        now = now_us()
        for n in range(count):
            device = Device(
                id=new_id(),
                account_id=account_id,
                live_mode=True,
                reference_id=None,
                device_identifier=None,
                division_id=profile.division_id,
                profile_id=profile.id,
                status=DeviceStatus.ACTIVE,
                allow_read=profile.allow_read,
                allow_write=profile.allow_write,
                allow_renew=profile.allow_renew,
                last_seen=None,
                created_at=now + n,
                updated_at=now + n,
                version=0,
            )
            await store.insert_device(device)
            ids.append("dev_" + device.id.hex())
        return ids
    finally:
        await store.close()


def seed_baseline(db: Path, count: int) -> list[str]:
    from benchmarks.baseline_sqlite import seed

    return seed(str(db), count)


def login(base: str, account: dict[str, str]) -> str:
    basic = base64.b64encode(f"{account['account_id']}:{account['live_key']}".encode()).decode()
    status, body = http(base + "/login", {"Authorization": "Basic " + basic})
    if status != 200:
        raise RuntimeError(f"login failed: {status} {body!r}")
    token: str = json.loads(body)["bearer_token"]
    return token


# --- wrk ----------------------------------------------------------------------------------

WRK_SCRIPT = """\
local ids = {%(ids)s}
local headers = {["Authorization"] = "Bearer %(token)s", ["Content-Type"] = "application/json"}
local method = "%(method)s"
local tag = "%(tag)s"
local n = 0
request = function()
  n = n + 1
  local path = "/devices/" .. ids[(n %% #ids) + 1]
  if method == "PATCH" then
    -- a reference_id never used before in this run: the unique index never refuses it
    return wrk.format("PATCH", path, headers, '{"reference_id":"' .. tag .. n .. '"}')
  end
  return wrk.format("GET", path, headers)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH_RESULT %%d %%d %%.1f %%.1f %%d\\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def run_wrk(
    base: str, method: str, ids: list[str], token: str, seconds: int, workdir: Path
) -> tuple[int, float, float, float, int]:
    """(requests, requests/s, p50 ms, p99 ms, errors) from one wrk run."""
    script = workdir / f"wrk-{method.lower()}-{time.monotonic_ns()}.lua"
    script.write_text(
        WRK_SCRIPT
        % {
            "ids": ",".join(f'"{i}"' for i in ids[:MAX_IDS_IN_SCRIPT]),
            "token": token,
            "method": method,
            "tag": f"r{time.time_ns()}-",
        }
    )
    argv = ["taskset", "-c", WRK_CORE, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s"]
    argv += ["--latency", "-s", str(script), base]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed:\n{done.stdout}\n{done.stderr}")
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            requests, duration_us, p50_us, p99_us, errors = line.split()[1:]
            count = int(requests)
            return (
                count,
                count / (int(duration_us) / 1e6),
                float(p50_us) / 1000,
                float(p99_us) / 1000,
                int(errors),
            )
    raise RuntimeError(f"no result in wrk's output:\n{done.stdout}")


def measure(
    scenario: str,
    base: str,
    pid: int,
    method: str,
    ids: list[str],
    token: str,
    args: argparse.Namespace,
    workdir: Path,
) -> Result:
    if args.warmup:
        run_wrk(base, method, ids, token, args.warmup, workdir)
    requests, rate, p50, p99, errors = run_wrk(base, method, ids, token, args.seconds, workdir)
    return Result(scenario, rate, p50, p99, peak_rss_mb(pid), requests, errors)


# --- the run ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> list[Result]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="devreg-bench-") as tmp:
        work = Path(tmp)
        started = time.monotonic()
        account, devreg_ids = seed_devreg(work / "devreg-data", args.devices)
        baseline_ids = seed_baseline(work / "baseline.sqlite3", args.devices)
        print(f"seeded {args.devices} devices each in {time.monotonic() - started:.1f} s")

        argv = [DEVREG, "serve", "--port", "{port}", "--mtls-port", "0", "--est-port", "0"]
        env = devreg_env(work / "devreg-data")
        with serving(argv, env, "/healthz", work / "devreg.log") as (base, pid):
            token = login(base, account)
            for scenario, (server, method, _) in SCENARIOS.items():
                if server == "devreg":
                    results[scenario] = measure(
                        scenario, base, pid, method, devreg_ids, token, args, work
                    )

        argv = [str(BIN / "python"), "-m", "uvicorn", "benchmarks.baseline_sqlite:app"]
        argv += ["--host", "127.0.0.1", "--port", "{port}", "--loop", "uvloop"]
        argv += ["--http", "httptools", "--no-access-log", "--log-level", "warning"]
        env = {**os.environ, "BASELINE_DB": str(work / "baseline.sqlite3")}
        with serving(argv, env, "/healthz", work / "baseline.log") as (base, pid):
            for scenario, (server, method, _) in SCENARIOS.items():
                if server == "baseline":
                    results[scenario] = measure(
                        scenario, base, pid, method, baseline_ids, "-", args, work
                    )

    for scenario, (_, _, compared) in SCENARIOS.items():
        result, baseline = results[scenario], results[compared]
        result.baseline_requests_per_s = baseline.requests_per_s
        result.ratio = result.requests_per_s / baseline.requests_per_s
    return list(results.values())


def table(results: list[Result]) -> str:
    head = ("scenario", "req/s", "p50 ms", "p99 ms", "peak RSS MB", "baseline req/s", "ratio")
    rows = [
        (
            r.scenario,
            f"{r.requests_per_s:,.0f}",
            f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}",
            f"{r.peak_rss_mb:.1f}",
            f"{r.baseline_requests_per_s:,.0f}",
            f"{r.ratio:.2f}",
        )
        for r in results
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="per scenario (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds before each, 0 = none")
    parser.add_argument("--devices", type=int, default=10_000, help="stored (default 10,000)")
    parser.add_argument(
        "--json", type=Path, default=REPO / "benchmarks" / "results" / "latest.json"
    )
    args = parser.parse_args(argv)
    results = run(args)
    print(table(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "seconds": args.seconds,
        "devices": args.devices,
        "connections": CONNECTIONS,
        "results": [asdict(r) for r in results],
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {args.json}")
    failed = [r.scenario for r in results if r.errors or not r.requests]
    if failed:
        print(f"errors or no answers in: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
