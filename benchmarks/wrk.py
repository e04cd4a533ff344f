"""Load generation with wrk: one thread, kept-alive connections, a Lua script that says
which requests to send (and, for a fixed rate, how long each connection waits between
them), and prints its own summary line so nothing has to parse wrk's human output.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.servers import pinned

CONNECTIONS = 32
MAX_PATHS_IN_SCRIPT = 10_000  # the paths a script cycles through


@dataclass(frozen=True)
class Load:
    """What wrk sends: `method` to the `paths` in turn, with `headers`; a body made of
    `body[0] + <request number> + body[1]` when `body` is given (so every PATCH or PUT
    writes a value never written before); `delay_ms` on average between a connection's
    requests (0: none, as fast as answered)."""

    base_url: str
    method: str
    paths: list[str]
    headers: dict[str, str] = field(default_factory=dict)
    body: tuple[str, str] | None = None
    delay_ms: int = 0
    connections: int = CONNECTIONS


@dataclass
class WrkResult:
    requests: int
    seconds: float  # wall time of the measured run, as wrk reports it
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int  # answers >= 400 (wrk counts those as status errors)
    socket_errors: int  # connect + read + write + timeouts
    wrk_cpu_s: float  # CPU time wrk itself used

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def lua_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def script(load: Load) -> str:
    paths = ",".join(lua_string(p) for p in load.paths[:MAX_PATHS_IN_SCRIPT])
    headers = ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in load.headers.items())
    head, tail = load.body or ("", "")
    return f"""\
local paths = {{{paths}}}
local headers = {{{headers}}}
local method = {lua_string(load.method)}
local has_body = {"true" if load.body else "false"}
local body_head, body_tail = {lua_string(head)}, {lua_string(tail)}
local delay_ms = {load.delay_ms}
local n = 0
request = function()
  n = n + 1
  local path = paths[(n % #paths) + 1]
  if has_body then
    return wrk.format(method, path, headers, body_head .. n .. body_tail)
  end
  return wrk.format(method, path, headers)
end
if delay_ms > 0 then
  -- a pause before each request of a connection, delay_ms on average: a known request
  -- rate. Random (uniform, 0 to twice the mean), not fixed: with a fixed pause the
  -- connections stay in step and every round arrives as one burst of 32 requests, whose
  -- queue, not the server, would make the p99.
  math.randomseed(os.time())
  delay = function() return math.random(0, 2 * delay_ms) end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH_RESULT %d %d %.1f %.1f %d %d\\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
"""


def run_wrk(load: Load, seconds: float, cores: str | None, workdir: Path) -> WrkResult:
    """One wrk run (1 thread, `load.connections` connections) pinned to `cores`."""
    lua = workdir / f"wrk-{time.monotonic_ns()}.lua"
    lua.write_text(script(load))
    argv = ["wrk", "-t1", f"-c{load.connections}", f"-d{max(1, round(seconds))}s"]
    argv += ["--timeout", "10s", "--latency", "-s", str(lua), load.base_url]
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(pinned(argv, cores), stdout=out, stderr=subprocess.STDOUT)
        # wait4, not wait: wrk's own CPU time tells whether the load side kept up
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read().decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{output}")
    return parse(output, usage.ru_utime + usage.ru_stime)


def parse(output: str, wrk_cpu_s: float) -> WrkResult:
    for line in output.splitlines():
        if line.startswith("BENCH_RESULT "):
            requests, duration_us, p50_us, p99_us, status, sockets = line.split()[1:]
            count, seconds = int(requests), int(duration_us) / 1e6
            return WrkResult(
                requests=count,
                seconds=seconds,
                requests_per_s=count / seconds,
                p50_ms=float(p50_us) / 1000,
                p99_ms=float(p99_us) / 1000,
                non_2xx=int(status),
                socket_errors=int(sockets),
                wrk_cpu_s=wrk_cpu_s,
            )
    raise RuntimeError(f"no result in wrk's output:\n{output}")


def version() -> str:
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    lines = (done.stdout or done.stderr).splitlines()  # "wrk 4.1.0 [epoll] ..." then usage
    return lines[0].strip() if lines else ""
