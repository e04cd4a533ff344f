"""Both listeners of the real `devreg serve`: in one process, and from N supervised worker
processes (restarted when one dies, stopped with the parent)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import (
    DEVREG,
    ECHO_DEVREG,
    RunningServer,
    devreg_env,
    free_port,
    start_server,
)
from tests.tls.helpers import client_context, devreg_ca, echo, issue

ECHO = "/_test/tls"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped) is not serving
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def wait_until(condition: Callable[[], bool], seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class Clients:
    """A plain and an mTLS client of one server, each request on a new connection."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        device = issue(devreg_ca(server.data_dir), server.data_dir.parent / "certs", "device")
        self.subject = device.subject
        self.context = client_context(server.data_dir / "ca.pem", device)

    def plain_pid(self) -> int:
        return int(httpx.get(self.server.base_url + ECHO, timeout=10).json()["pid"])

    def mtls_pid(self) -> int:
        found = echo(self.server.mtls_port or 0, self.context)
        assert found["subject"] == self.subject
        return int(found["pid"])

    def pids(self, ask: Callable[[], int], want: int, tries: int = 300) -> set[int]:
        """The processes answering, asking until `want` of them did (new connections are
        shared out by the kernel, not in turn)."""
        seen: set[int] = set()
        for _ in range(tries):
            seen.add(ask())
            if len(seen) >= want:
                break
        return seen


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[RunningServer]:
    server = start_server(
        tmp_path / "data", workers=2, mtls=True, command=ECHO_DEVREG, rate_limit=0
    )
    try:
        yield server
    finally:
        server.stop()


def test_one_process_serves_both_listeners_with_one_lifespan(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", mtls=True, command=ECHO_DEVREG, rate_limit=0)
    try:
        clients = Clients(server)
        assert clients.plain_pid() == clients.mtls_pid() == server.process.pid
        log = server.log()
        assert log.count("Application startup complete") == 1, log
        assert f"https://127.0.0.1:{server.mtls_port} (client certificates)" in log
    finally:
        server.stop()
    # uvicorn finishes gracefully, then re-raises the signal it caught
    assert server.process.returncode in (0, -signal.SIGTERM)
    assert server.log().count("Application shutdown complete") == 1


def test_two_workers_serve_both_listeners(two_workers: RunningServer) -> None:
    clients = Clients(two_workers)
    plain = clients.pids(clients.plain_pid, 2)
    mtls = clients.pids(clients.mtls_pid, 2)
    assert len(plain) == 2 and plain == mtls, (plain, mtls)
    assert two_workers.process.pid not in plain
    assert {parent_of(pid) for pid in plain} == {two_workers.process.pid}
    log = two_workers.log()
    assert log.count("Application startup complete") == 2, log  # once per process
    assert f"Started parent process [{two_workers.process.pid}]" in log


def test_a_dying_worker_is_replaced(two_workers: RunningServer) -> None:
    clients = Clients(two_workers)
    before = clients.pids(clients.mtls_pid, 2)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: not alive(victim))

    def replaced() -> bool:
        return len(clients.pids(clients.plain_pid, 2, tries=20) - before) == 1

    assert wait_until(replaced), two_workers.log()
    after = clients.pids(clients.mtls_pid, 2)
    assert victim not in after and len(after) == 2
    assert f"worker process [{victim}] exited with code -9" in two_workers.log()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_parent_stops_the_workers(
    two_workers: RunningServer, sig: signal.Signals
) -> None:
    clients = Clients(two_workers)
    workers = clients.pids(clients.plain_pid, 2)
    two_workers.process.send_signal(sig)
    assert two_workers.process.wait(30) == 0
    assert not any(alive(pid) for pid in workers)
    log = two_workers.log()
    assert log.count("Application shutdown complete") == 2, log
    assert "Stopped parent process" in log


def test_workers_of_a_killed_parent_stop_by_themselves(two_workers: RunningServer) -> None:
    clients = Clients(two_workers)
    workers = clients.pids(clients.plain_pid, 2)
    two_workers.process.kill()
    two_workers.process.wait()
    assert wait_until(lambda: not any(alive(pid) for pid in workers), 10)


def test_mtls_port_0_means_no_client_certificate_listener(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", rate_limit=0)  # start_server passes --mtls-port 0
    try:
        assert httpx.get(server.base_url + "/healthz").status_code == 200
        assert "https://" not in server.log()
    finally:
        server.stop()


def run_serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DEVREG, "serve", *args],
        env=devreg_env(tmp_path / "data", None),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_taken_mtls_port_is_a_clear_failure(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_serve(tmp_path, "--port", str(free_port(port)), "--mtls-port", str(port))
    assert done.returncode == 1, done.stderr
    assert f"devreg: cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unreadable_client_ca_file_is_a_clear_failure(tmp_path: Path) -> None:
    bad = tmp_path / "bad-ca.pem"
    bad.write_text("not a certificate\n")
    for path in (bad, tmp_path / "missing.pem"):
        done = run_serve(
            tmp_path, "--port", str(free_port()), "--mtls-port", "0", "--client-ca", str(path)
        )
        assert done.returncode == 1, done.stderr
        assert f"devreg: client CA file {path}" in done.stderr
        assert "Traceback" not in done.stderr
