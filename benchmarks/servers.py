"""Server processes for the benchmark: start one pinned to a core, wait until it answers,
read its CPU time and memory from /proc (summed or maxed over its worker processes), stop it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(
    url: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    method: str | None = None,
) -> tuple[int, bytes]:
    """(status, body) of one request; HTTP errors are answers, not exceptions."""
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def pinned(argv: list[str], cores: str | None) -> list[str]:
    """`argv` under `taskset -c cores`, or as it is when `cores` is None (not pinned)."""
    return argv if cores is None else ["taskset", "-c", cores, *argv]


# --- /proc ----------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (worker processes of a supervisor)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it exited meanwhile
            continue
        # The command name (2nd field) is in parentheses and may hold spaces.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by these processes (utime + stime)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / CLOCK_TICKS


def busy_seconds(cores: str | None) -> float:
    """CPU time the cores spent on anything but idle and I/O wait, all processes together
    (`/proc/stat`; None = every core): set beside a pinned server's own CPU time, it tells
    whether other processes on the machine took part of the server's core."""
    wanted = {f"cpu{c}" for c in cores.split(",")} if cores is not None else {"cpu"}
    total = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *ticks = line.split()
        if name in wanted:
            values = [int(t) for t in ticks[:8]]  # user nice system idle iowait irq softirq steal
            total += sum(values) - values[3] - values[4]
    return total / CLOCK_TICKS


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of one process in MB: resident now, and its peak so far."""
    values = {"VmRSS:": 0.0, "VmHWM:": 0.0}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0, 0.0
    for line in lines:
        key, _, rest = line.partition(":")
        if key + ":" in values:
            values[key + ":"] = int(rest.split()[0]) / 1024  # "VmRSS:\t  51234 kB"
    return values["VmRSS:"], values["VmHWM:"]


# --- a running server ------------------------------------------------------------------------


@dataclass
class Server:
    """A started server: the process we launched and, for `--workers N`, its workers."""

    name: str
    process: subprocess.Popen[bytes]
    cores: str | None  # what it is pinned to, None = not pinned
    log: Path
    workers: int = 1

    @property
    def pid(self) -> int:
        return self.process.pid

    def pids(self) -> list[int]:
        return descendants(self.pid)

    def serving_pids(self) -> list[int]:
        """The processes that serve requests: the workers when there is a supervisor."""
        pids = self.pids()
        return [p for p in pids if p != self.pid] if self.workers > 1 else pids

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pids())

    def memory_mb(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) in MB of the biggest serving process (the target is per process)."""
        sizes = [memory_mb(pid) for pid in self.serving_pids()]
        return max(s[0] for s in sizes), max(s[1] for s in sizes)


def _ready(url: str) -> bool:
    """Whether `url` answers; for `tcp://host:port` (a TLS listener that wants a client
    certificate), whether it accepts a connection."""
    if url.startswith("tcp://"):
        host, _, port = url[6:].rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
        except OSError:
            return False
        return True
    try:
        urllib.request.urlopen(url, timeout=2).close()
    except urllib.error.HTTPError:
        return True  # it answered
    except OSError:
        return False
    return True


def wait_ready(server: Server, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited {server.process.returncode}:\n{server.log.read_text()}"
            )
        if _ready(url) and len(server.serving_pids()) >= server.workers:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not answer {url}:\n{server.log.read_text()}")


@contextmanager
def serving(
    name: str,
    argv: list[str],
    env: dict[str, str],
    log: Path,
    cores: str | None,
    ready_url: str,
    workers: int = 1,
    cwd: Path = REPO,
) -> Iterator[Server]:
    """Start `argv` in `cwd` (pinned to `cores` unless None), wait until `ready_url`
    answers and every worker is up, stop it (SIGTERM, then SIGKILL) on the way out. Which
    code a Python server runs is `env`'s (PYTHONPATH: see devreg_setup.devreg_env)."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            pinned(argv, cores),
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers form a group we can stop together
        )
    server = Server(name, process, cores, log, workers)
    try:
        wait_ready(server, ready_url)
        yield server
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group we started (the server and its workers), then wait."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
