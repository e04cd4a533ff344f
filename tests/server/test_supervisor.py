"""The worker supervisor with small real worker processes: restarts, and workers that will
not stop. (Serving workers are in test_listeners.py.)"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from devreg.server.supervisor import Supervisor


def short_lived(marker: str, parent_pid: int) -> None:
    """A worker that records its start and exits at once, with an error."""
    with open(marker, "a") as file:
        file.write(f"{os.getpid()} {parent_pid}\n")
    sys.exit(3)


def stubborn(marker: str, parent_pid: int) -> None:
    """A worker that ignores SIGTERM."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(marker, "a") as file:
        file.write(f"{os.getpid()}\n")
    time.sleep(600)


def run_for(supervisor: Supervisor, seconds: float) -> float:
    """Run the supervisor (here, in the main thread, as `devreg serve` does) until told to
    stop after `seconds`; how long stopping took."""
    stopped: list[float] = []

    def stop() -> None:
        stopped.append(time.monotonic())
        supervisor.stopping.set()

    timer = threading.Timer(seconds, stop)
    timer.start()
    try:
        supervisor.run()
    finally:
        timer.cancel()
    return time.monotonic() - stopped[0]


def lines(path: Path, count: int, seconds: float = 20) -> list[str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = path.read_text().splitlines() if path.exists() else []
        if len(found) >= count:
            return found
        time.sleep(0.05)
    return found


def test_a_worker_that_exits_is_started_again_at_most_once_a_second(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "starts"
    run_for(Supervisor(short_lived, (str(marker),), 1, poll=0.05), 2.6)
    starts = lines(marker, 1)
    assert 2 <= len(starts) <= 4, starts  # not a tight loop
    assert {line.split()[1] for line in starts} == {str(os.getpid())}  # told its parent
    assert "exited with code 3: starting another" in caplog.text


def test_a_worker_that_ignores_sigterm_is_killed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "pids"
    supervisor = Supervisor(stubborn, (str(marker),), 2, poll=0.05, stop_timeout=0.5)
    took = run_for(supervisor, 3)
    pids = [int(pid) for pid in lines(marker, 2)]
    assert len(pids) == 2
    assert took < 10
    assert all(process.exitcode == -signal.SIGKILL for process in supervisor.workers)
    assert "did not stop: killing it" in caplog.text
