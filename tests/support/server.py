"""Run the real `devreg` command: a server subprocess on a free port, accounts via the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

DEVREG = str(Path(sys.executable).parent / "devreg")
REPO = Path(__file__).resolve().parents[2]
# `devreg` with a test-only route, GET /_test/tls, that shows what the request's TLS
# extension holds (tests/support/echo_devreg.py).
ECHO_DEVREG = (sys.executable, "-m", "tests.support.echo_devreg")


def free_port(*taken: int) -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in taken:
            return port


@dataclass
class RunningServer:
    base_url: str
    data_dir: Path
    database_url: str | None
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    mtls_port: int | None = None  # the client-certificate listener, when started with one
    est_port: int | None = None  # the EST listener, when started with one

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def devreg_env(data_dir: Path, database_url: str | None, **settings: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVREG_")}
    env["DEVREG_DATA_DIR"] = str(data_dir)
    if database_url:
        env["DEVREG_DATABASE_URL"] = database_url
    for key, value in settings.items():
        if value is not None:
            env["DEVREG_" + key.upper()] = str(value)
    return env


def start_server(
    data_dir: Path,
    *,
    database_url: str | None = None,
    workers: int = 1,
    mtls: bool = False,
    est: bool = False,
    command: Sequence[str] = (DEVREG,),
    args: Sequence[str] = (),
    **settings: object,
) -> RunningServer:
    """`devreg serve` on a free port; with `mtls`, its client-certificate listener on
    another (without, that listener is off). `command` may be ECHO_DEVREG; `args` are
    further `serve` options."""
    port = free_port()
    mtls_port = free_port(port) if mtls else 0
    est_port = free_port(port, mtls_port) if est else 0
    env = devreg_env(data_dir, database_url, **settings)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"server-{port}.log"
    argv = [*command, "serve", "--port", str(port), "--mtls-port", str(mtls_port)]
    argv += ["--est-port", str(est_port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*argv, "--workers", str(workers), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    server = RunningServer(
        f"http://127.0.0.1:{port}",
        data_dir,
        database_url,
        process,
        log_path,
        env,
        mtls_port or None,
        est_port or None,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"devreg serve exited {process.returncode}:\n{server.log()}")
        try:
            if (
                httpx.get(server.base_url + "/healthz", timeout=1).status_code == 200
                and (not mtls_port or listening(mtls_port))
                and (not est_port or listening(est_port))
            ):
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"devreg serve did not become healthy:\n{server.log()}")


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DEVREG, *args], env=env, capture_output=True, text=True, timeout=60)


def create_account(server: RunningServer, name: str) -> dict[str, str]:
    done = run_cli(server.env, "account", "create", "--name", name, "--json")
    assert done.returncode == 0, done.stderr
    created: dict[str, str] = json.loads(done.stdout)
    return created


def login(server: RunningServer, account_id: str, key: str) -> str:
    response = httpx.get(server.base_url + "/login", auth=(account_id, key))
    assert response.status_code == 200, response.text
    token: str = response.json()["bearer_token"]
    return token


# The two stores a module-scoped server fixture is parametrised over.
STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextlib.contextmanager
def store_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, **settings: object
) -> Iterator[RunningServer]:
    """`devreg serve` on the store the fixture's parameter names (one of STORES), without
    rate limits unless `settings` say otherwise; stopped afterwards."""
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    running = start_server(
        tmp_path_factory.mktemp(request.param) / "data",
        database_url=database_url,
        **{"rate_limit": 0, **settings},
    )
    try:
        yield running
    finally:
        running.stop()
