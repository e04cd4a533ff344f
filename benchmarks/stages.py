"""Bringing up both sides of a comparison, seeded with the same number of devices.

SQLite stage (one scale): devreg (one process: plain + mTLS listener) and the baselines
(plain HTTP app, TLS app), all pinned to the server core; an nginx TLS client per TLS
server, pinned with wrk to the load core. PostgreSQL stage: a fresh database per side,
devreg with `--workers 2` and the asyncpg baseline with `uvicorn --workers 2`, not pinned
(two workers need both cores, so wrk and PostgreSQL share them).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks import baseline_store
from benchmarks.devreg_setup import (
    DEVREG,
    Account,
    Imported,
    MtlsDevice,
    device_ids,
    devreg_env,
    import_devices,
    init_account,
    login,
    make_mtls_device,
)
from benchmarks.nginx import tls_client
from benchmarks.scenarios import Side
from benchmarks.servers import Server, free_port, serving

SERVER_CORE = "0"
LOAD_CORE = "1"
PYTHON = sys.executable
# What the baselines share with devreg's listeners (server/listeners.py): uvloop,
# httptools, no access log, no Server header, 30 s keep-alive; and its TLS 1.2 suites.
UVICORN = [
    PYTHON, "-m", "uvicorn", "--host", "127.0.0.1", "--loop", "uvloop", "--no-access-log",
    "--no-server-header", "--timeout-keep-alive", "30", "--log-level", "warning",
]  # fmt: skip
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


@dataclass
class Stage:
    devices: int
    devreg: Side
    baseline: Side
    imported: Imported | None = None
    seconds_to_seed: float = 0.0
    baseline_log: Side | None = None  # the baseline writing the change log (issue 14)
    against: Side | None = None  # devreg at another revision (run.py --against)


def _say(text: str) -> None:
    print(text, flush=True)


def _pinning(server: Server) -> str:
    return f"core {server.cores}" if server.cores is not None else "not pinned"


@contextmanager
def sqlite_stage(devices: int, workdir: Path) -> Iterator[Stage]:
    workdir.mkdir(parents=True, exist_ok=True)
    env = devreg_env(workdir / "devreg-data")
    started = time.monotonic()
    account = init_account(env)
    imported = import_devices(env, account, devices, workdir)
    _say(f"  devreg: {devices:,} devices in {imported.seconds:.1f} s ({imported.method})")
    ids = device_ids(env, account)
    db = str(workdir / "baseline.sqlite3")
    seeded = baseline_store.seed(db, devices)
    seconds_to_seed = time.monotonic() - started
    _say(f"  baseline: {devices:,} devices seeded (executemany)")
    with ExitStack() as stack:
        devreg, device = _devreg_side(stack, env, account, ids, workdir)
        baseline = _baseline_side(stack, db, seeded, device, workdir)
        logged = _logged_baseline_side(stack, db, baseline.ids, workdir)
        for server in (devreg.server, baseline.server, baseline.tls_server, logged.server):
            assert server is not None
            _say(f"  {server.name} (pid {server.pid}): {_pinning(server)}")
        _say(f"  wrk and nginx (TLS client): core {LOAD_CORE}")
        yield Stage(devices, devreg, baseline, imported, seconds_to_seed, logged)


LOGGED_SIDE = "baseline+log"


def _logged_baseline_side(stack: ExitStack, db: str, ids: list[str], workdir: Path) -> Side:
    """The plain baseline again, on the same file, with BASELINE_CHANGE_LOG=1: its PATCH
    writes devreg's change log entry in the UPDATE's transaction."""
    env = {**os.environ, "BASELINE_DB": db, "BASELINE_CHANGE_LOG": "1"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [*UVICORN, "benchmarks.baseline_sqlite:app", "--http", "httptools", "--port", str(port)]
    server = stack.enter_context(
        serving("baseline+log", argv, env, workdir / "baseline-log.log", SERVER_CORE, base + "/")
    )
    return Side(LOGGED_SIDE, server, base, ids)


def _devreg_side(
    stack: ExitStack, env: dict[str, str], account: Account, ids: list[str], workdir: Path
) -> tuple[Side, MtlsDevice]:
    """devreg serving both listeners in one process, its dialect D device, and nginx with
    that device's certificate in front of the mTLS listener."""
    port, mtls_port = free_port(), free_port()
    argv = [DEVREG, "serve", "--port", str(port), "--mtls-port", str(mtls_port), "--est-port", "0"]
    base = f"http://127.0.0.1:{port}"
    log = workdir / "devreg.log"
    server = stack.enter_context(serving("devreg", argv, env, log, SERVER_CORE, base + "/healthz"))
    device = make_mtls_device(base, account, workdir)
    side = Side("devreg", server, base, ids, login(base, account), tls_server=server)
    side.mtls_device = (device.device_id, device.field_id)
    side.tls_client = stack.enter_context(
        tls_client(mtls_port, device.cert_path, device.key_path, workdir / "nginx-devreg",
                   LOAD_CORE)
    )  # fmt: skip
    return side, device


def _baseline_side(
    stack: ExitStack, db: str, seeded: baseline_store.Seeded, device: MtlsDevice, workdir: Path
) -> Side:
    """The plain baseline, the TLS baseline with devreg's server certificate and CA (its
    copy of the device's certificate row made first), and nginx in front of it."""
    der, serial, not_before, not_after, public_key = device.certificate_facts()
    raw = baseline_store.add_mtls_device(db, seeded, der, serial, not_before, not_after, public_key)
    env = {**os.environ, "BASELINE_DB": db}
    data = workdir / "devreg-data"
    port, tls_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [*UVICORN, "benchmarks.baseline_sqlite:app", "--http", "httptools", "--port", str(port)]
    plain = stack.enter_context(
        serving("baseline", argv, env, workdir / "baseline.log", SERVER_CORE, base + "/")
    )
    tls_argv = [
        *UVICORN, "benchmarks.baseline_mtls:app", "--port", str(tls_port),
        "--http", "benchmarks.baseline_mtls:PeerCertProtocol",
        "--ssl-certfile", str(data / "server.pem"), "--ssl-keyfile", str(data / "server.key"),
        "--ssl-ca-certs", str(data / "ca.pem"), "--ssl-cert-reqs", "2",
        "--ssl-ciphers", TLS12_CIPHERS,
    ]  # fmt: skip
    tls = stack.enter_context(
        serving("baseline TLS", tls_argv, env, workdir / "baseline-tls.log", SERVER_CORE,
                f"tcp://127.0.0.1:{tls_port}")
    )  # fmt: skip
    side = Side("baseline", plain, base, ["dev_" + i.hex() for i in seeded.ids], tls_server=tls)
    side.mtls_device = (str(uuid.UUID(bytes=raw.device_id)), str(uuid.UUID(bytes=raw.field_id)))
    side.tls_client = stack.enter_context(
        tls_client(tls_port, device.cert_path, device.key_path, workdir / "nginx-baseline",
                   LOAD_CORE)
    )  # fmt: skip
    return side


# --- PostgreSQL ---------------------------------------------------------------------------------


def _database_url(admin_url: str, name: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


async def _admin(admin_url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def postgres_reachable(admin_url: str) -> str | None:
    """None when PostgreSQL answers at `admin_url`, else why not."""
    try:
        asyncio.run(_admin(admin_url, "SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """`CREATE DATABASE bench_<hex>`, its URL, and `DROP DATABASE` at the end."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(admin_url, f"CREATE DATABASE {name}"))
    try:
        yield _database_url(admin_url, name)
    finally:
        asyncio.run(_admin(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@contextmanager
def postgres_stage(
    devices: int, workdir: Path, admin_url: str, workers: int = 2
) -> Iterator[Stage]:
    from benchmarks.baseline_postgres import seed as seed_postgres

    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        devreg_url = stack.enter_context(fresh_database(admin_url))
        baseline_url = stack.enter_context(fresh_database(admin_url))
        env = devreg_env(workdir / "devreg-data", devreg_url)
        started = time.monotonic()
        account = init_account(env)
        imported = import_devices(env, account, devices, workdir)
        _say(f"  devreg: {devices:,} devices in {imported.seconds:.1f} s ({imported.method})")
        ids = device_ids(env, account)
        raw_ids = ["dev_" + i.hex() for i in asyncio.run(seed_postgres(baseline_url, devices))]
        seconds_to_seed = time.monotonic() - started
        base, raw_base = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
        devreg = stack.enter_context(_devreg_workers(base, env, workers, workdir))
        baseline = stack.enter_context(_asyncpg_workers(raw_base, baseline_url, workers, workdir))
        log_base = f"http://127.0.0.1:{free_port()}"
        logged = stack.enter_context(
            _asyncpg_workers(log_base, baseline_url, workers, workdir, change_log=True)
        )
        for server in (devreg, baseline, logged):
            _say(f"  {server.name} (pid {server.pid}, {workers} workers): {_pinning(server)}")
        _say("  wrk: not pinned (the workers need both cores; PostgreSQL runs on them too)")
        yield Stage(
            devices,
            Side("devreg", devreg, base, ids, login(base, account)),
            Side("baseline", baseline, raw_base, raw_ids),
            imported,
            seconds_to_seed,
            Side(LOGGED_SIDE, logged, log_base, raw_ids),
        )


def _port(base_url: str) -> str:
    return base_url.rsplit(":", 1)[1]


def _devreg_workers(
    base: str, env: dict[str, str], workers: int, workdir: Path
) -> AbstractContextManager[Server]:
    argv = [DEVREG, "serve", "--port", _port(base), "--mtls-port", "0", "--est-port", "0"]
    argv += ["--workers", str(workers)]
    log = workdir / "devreg.log"
    return serving("devreg (PostgreSQL)", argv, env, log, None, base + "/healthz", workers)


def _asyncpg_workers(
    base: str, database_url: str, workers: int, workdir: Path, change_log: bool = False
) -> AbstractContextManager[Server]:
    """The asyncpg baseline; `change_log`: the one writing the log (on the same database:
    the two baselines are measured one after the other, never at once)."""
    argv = [*UVICORN, "benchmarks.baseline_postgres:app", "--http", "httptools"]
    argv += ["--port", _port(base), "--workers", str(workers)]
    env = {**os.environ, "BASELINE_PG_URL": database_url}
    if change_log:
        env["BASELINE_CHANGE_LOG"] = "1"
    log = workdir / ("baseline-log.log" if change_log else "baseline.log")
    name = "baseline+log (asyncpg)" if change_log else "baseline (asyncpg)"
    return serving(name, argv, env, log, None, base + "/", workers)
