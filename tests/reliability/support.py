"""What the reliability tests share: a tenant on a real `devreg serve`, many concurrent
clients over loopback, writers that remember what was acknowledged, the server's processes
(to kill them), private PostgreSQL and Redis servers (to stop them: the shared ones on
5432 and 6379 belong to everyone's tests) and the figures the run reports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec

from devreg.changelog.records import DeviceRecord, device_record
from devreg.changelog.service import ChangeLogService
from devreg.core.ids import parse_prefixed
from devreg.core.records import Device
from tests.conftest import service_missing
from tests.support.server import RunningServer, create_account, free_port, login

T = TypeVar("T")
D_BASE = "/iot/api/v2"
# Plain HTTP needs no TLS, but every httpx client builds a context unless given one (20 ms).
PLAIN_TLS = ssl.create_default_context()
F_ERROR_KEYS = {"object", "live_mode", "context", "type", "code", "message", "time_created"}


# --- the figures the run reports (tests/reliability/conftest.py prints them)


@dataclass
class Figures:
    requests: int = 0  # HTTP requests sent by the reliability tests' clients
    faults: dict[str, int] = field(default_factory=dict)  # what was done to the service
    writes_checked: int = 0  # acknowledged writes verified after a crash or an outage
    notes: list[str] = field(default_factory=list)  # seeds, kill moments, outage lengths

    def fault(self, kind: str, count: int = 1) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + count


FIGURES = Figures()


async def _count_request(request: httpx.Request) -> None:
    FIGURES.requests += 1


def api_client(base_url: str, headers: dict[str, str], *, timeout: float = 15) -> httpx.AsyncClient:
    """One client = one connection (a device or a back-office process)."""
    return httpx.AsyncClient(
        base_url=base_url,
        headers=headers,
        timeout=timeout,
        verify=PLAIN_TLS,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        event_hooks={"request": [_count_request]},
    )


def mtls_client(port: int, ca: Path, cert: Path, key: Path) -> httpx.AsyncClient:
    """A device on the client-certificate listener, presenting its own certificate."""
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(cert, key)
    return httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{port}",
        timeout=15,
        verify=context,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        event_hooks={"request": [_count_request]},
    )


async def together(calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Start every call at the same moment (once all are waiting at the gate)."""
    gate = asyncio.Event()

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        await gate.wait()
        return await call()

    tasks = [asyncio.create_task(one(call)) for call in calls]
    await asyncio.sleep(0)
    gate.set()
    return await asyncio.gather(*tasks)


# --- a tenant: account, token, a dialect D profile with one mandatory field


@dataclass
class Tenant:
    account_id: str
    key: str  # live API key (x-api-key)
    token: str  # bearer token for dialect F, from the same key
    profile_id: str
    field_id: str

    @property
    def f_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    @property
    def d_headers(self) -> dict[str, str]:
        return {"x-api-key": self.key}


def new_tenant(server: RunningServer, name: str = "Acme") -> Tenant:
    account = create_account(server, name)
    token = login(server, account["account_id"], account["live_key"])
    with httpx.Client(base_url=server.base_url + D_BASE, verify=PLAIN_TLS, timeout=30) as api:
        made = api.post(
            "/device-profile",
            headers={"x-api-key": account["live_key"]},
            json={
                "name": "Meter",
                "fields": [{"name": "note", "mandatory": True}],
                "device_api_allow_read": True,
                "device_api_allow_write": True,
                "device_api_allow_renew_certificate": True,
            },
        )
    assert made.status_code == 201, made.text
    profile = made.json()
    return Tenant(
        account["account_id"], account["live_key"], token, profile["id"], profile["fields"][0]["id"]
    )


def d_body(tenant: Tenant, tag: str) -> dict[str, Any]:
    """A dialect D write whose identifier and only value are both `tag`: a record read back
    shows at once whether both came from the same write."""
    return {"device_identifier": tag, "fields": [{"id": tenant.field_id, "value": tag}]}


def make_d_device(server: RunningServer, tenant: Tenant, tag: str) -> str:
    with httpx.Client(base_url=server.base_url + D_BASE, verify=PLAIN_TLS, timeout=30) as api:
        made = api.post(
            "/device",
            headers=tenant.d_headers,
            json={"device_profile_id": tenant.profile_id, **d_body(tenant, tag)},
        )
    assert made.status_code == 201, made.text
    device_id: str = made.json()["id"]
    return device_id


def issue_certificate(
    server: RunningServer, tenant: Tenant, device_id: str, directory: Path
) -> tuple[Path, Path]:
    """The device's certificate and key (made by devreg, returned once), in files."""
    with httpx.Client(base_url=server.base_url + D_BASE, verify=PLAIN_TLS, timeout=30) as api:
        issued = api.post(
            f"/device/{device_id}/certificate",
            headers=tenant.d_headers,
            json={"generate_key": True},
        )
    assert issued.status_code == 201, issued.text
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{device_id}.pem", directory / f"{device_id}.key"
    cert.write_text(issued.json()["pem"])
    key.write_text(issued.json()["private_key"])
    key.chmod(0o600)
    return cert, key


def raw_id(api_id: str) -> bytes:
    """The stored 16 bytes of a device id as either dialect renders it."""
    found = parse_prefixed("dev", api_id)
    return found if found is not None else uuid.UUID(api_id).bytes


# --- the dialects' error envelopes


def f_error(response: httpx.Response) -> tuple[int, str, str, str]:
    """Seed 000's error object, exactly: (status, type, code, message)."""
    body = response.json()
    assert isinstance(body, dict) and set(body) == F_ERROR_KEYS, (response.status_code, body)
    assert body["object"] == "error", body
    return response.status_code, body["type"], body["code"], body["message"]


def d_error(response: httpx.Response) -> tuple[int, str, str]:
    """Seed 003's `{"errors": [{"code", "message"}]}`, exactly: (status, code, message)."""
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"errors"}, (response.status_code, body)
    (error,) = body["errors"]
    assert set(error) == {"code", "message"}, body
    return response.status_code, error["code"], error["message"]


def is_unavailable(dialect: str, response: httpx.Response) -> bool:
    """A 503 in the dialect's envelope, with Retry-After: what a database outage must give."""
    if response.status_code != 503 or response.headers.get("retry-after") != "1":
        return False
    if dialect == "F":
        return f_error(response)[1:3] == ("api_error", "service_unavailable")
    return d_error(response)[1] == "service_unavailable"


# --- what was written, and what may have been


@dataclass
class Written:
    """One record, written by one writer at a time. A write answered 2xx is acknowledged;
    one answered otherwise with a 5xx, or not at all, may or may not have been applied."""

    api_id: str
    value: str  # the last acknowledged value (the creation's, until an update is)
    acked: int = 1  # acknowledged writes, the creation included (the stored version)
    unsure: list[str] = field(default_factory=list)  # sent after the last acknowledged one
    unknown: int = 0  # writes whose outcome is unknown, over the record's life

    def sending(self, value: str) -> None:
        self.unsure.append(value)
        self.unknown += 1

    def answered(self, value: str, status: int) -> None:
        if 200 <= status < 300:
            self.value = value
            self.acked += 1
            self.unknown -= 1
            self.unsure.clear()
        elif status < 500:  # refused: certainly not applied
            self.unsure.remove(value)
            self.unknown -= 1

    def possible(self) -> set[str]:
        """What the record may hold now: the last acknowledged value, or a later one."""
        return {self.value, *self.unsure}

    def versions(self) -> range:
        """Every write moves the version by one: the acknowledged ones all did."""
        return range(self.acked, self.acked + self.unknown + 1)


@dataclass
class Answer:
    dialect: str  # "F" or "D"
    what: str  # e.g. "PATCH /devices"
    sent: float  # time.monotonic()
    done: float
    response: httpx.Response | None  # None: no answer (connection refused, reset, timeout)

    @property
    def status(self) -> int:
        return 0 if self.response is None else self.response.status_code


class Journal:
    """Every request a load sent, with its answer and when."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []

    async def send(
        self, dialect: str, what: str, call: Awaitable[httpx.Response]
    ) -> httpx.Response | None:
        sent = time.monotonic()
        try:
            response: httpx.Response | None = await call
        except httpx.TransportError:
            response = None
        self.answers.append(Answer(dialect, what, sent, time.monotonic(), response))
        return response

    def between(self, start: float, end: float) -> list[Answer]:
        """The requests sent and answered within [start, end]."""
        return [a for a in self.answers if a.sent >= start and a.done <= end]


@dataclass
class Records:
    f: list[Written] = field(default_factory=list)
    d: list[Written] = field(default_factory=list)
    unanswered_creates: list[str] = field(default_factory=list)  # F references

    def acknowledged(self) -> int:
        return sum(record.acked for record in [*self.f, *self.d])


async def f_writer(
    client: httpx.AsyncClient, name: str, records: Records, journal: Journal, stop: asyncio.Event
) -> None:
    """Dialect F: creates a device with a reference, then PATCHes it twice, and again."""
    mine: Written | None = None
    n = 0
    while not stop.is_set():
        n += 1
        ref = f"{name}-{n}"
        if mine is None or n % 3 == 1:
            answer = await journal.send(
                "F", "POST /devices", client.post("/devices", json={"reference_id": ref})
            )
            if answer is not None and answer.status_code == 201:
                mine = Written(answer.json()["id"], ref)
                records.f.append(mine)
            elif answer is None or answer.status_code >= 500:
                records.unanswered_creates.append(ref)
        else:
            mine.sending(ref)
            answer = await journal.send(
                "F",
                "PATCH /devices/{id}",
                client.patch(f"/devices/{mine.api_id}", json={"reference_id": ref}),
            )
            if answer is not None:
                mine.answered(ref, answer.status_code)
        if answer is None or answer.status_code >= 300:
            await asyncio.sleep(0.02)  # the server is down or refusing: no busy loop


async def d_writer(
    client: httpx.AsyncClient,
    name: str,
    record: Written,
    tenant: Tenant,
    journal: Journal,
    stop: asyncio.Event,
) -> None:
    """Dialect D: PUTs its device's identifier and value (API key or the device's own
    certificate, whichever the client carries)."""
    n = 0
    while not stop.is_set():
        n += 1
        tag = f"{name}-{n}"
        record.sending(tag)
        answer = await journal.send(
            "D",
            "PUT /device/{id}",
            client.put(f"{D_BASE}/device/{record.api_id}", json=d_body(tenant, tag)),
        )
        if answer is not None:
            record.answered(tag, answer.status_code)
        if answer is None or answer.status_code >= 300:
            await asyncio.sleep(0.02)


async def check_records(base_url: str, tenant: Tenant, records: Records, store: Any) -> int:
    """Every acknowledged write is there, through the API and in the stored version: each
    record holds its last acknowledged value (or a later, unacknowledged one), and its
    version counts every acknowledged write. Returns the acknowledged writes checked."""
    async with (
        api_client(base_url, tenant.f_headers) as f,
        api_client(base_url + D_BASE, tenant.d_headers) as d,
    ):
        for record in records.f:
            got = await f.get(f"/devices/{record.api_id}")
            assert got.status_code == 200, (record, got.text)
            assert got.json()["reference_id"] in record.possible(), (record, got.json())
        for record in records.d:
            got = await d.get(f"/device/{record.api_id}")
            assert got.status_code == 200, (record, got.text)
            body = got.json()
            (value,) = body["fields"]
            assert body["device_identifier"] in record.possible(), (record, body)
            # One write, not halves of two: identifier and value always travel together.
            assert value["value"] == body["device_identifier"], body
        for ref in records.unanswered_creates:  # created or not, but never twice
            listed = await f.get("/devices", params={"reference_id": ref})
            assert listed.status_code == 200 and len(listed.json()["data"]) <= 1, listed.text
    for record in [*records.f, *records.d]:
        stored = await store.get_device_by_id(raw_id(record.api_id))
        assert stored is not None and stored.version in record.versions(), (record, stored)
        await check_logged(store, stored)
    verified = await ChangeLogService(store, store).verify()
    assert verified.broken is None, verified.broken
    return records.acknowledged()


async def check_logged(store: Any, device: Device) -> None:
    """The change log holds neither more nor less than what was committed: the device's
    last entry is the device as it is stored, and its entries count its versions."""
    entry = await store.object_as_of(device.id, 2**62)
    assert entry is not None and entry.after is not None, device
    logged = msgspec.json.decode(entry.after, type=DeviceRecord)
    values = (await store.field_values([device.id])).get(device.id, {})
    assert logged == device_record(device, values), (logged, device)
    entries, total = await store.object_history(device.id, limit=1, offset=0)
    assert total == device.version and entries[0].object_version == device.version


# --- the server's processes


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(line) for line in found.stdout.split()]


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    for child in children(pid):
        found += [child, *descendants(child)]
    return found


def worker_pids(server: RunningServer) -> list[int]:
    """The serving processes under `devreg serve --workers N` (not multiprocessing's
    resource tracker)."""
    workers = []
    for pid in descendants(server.process.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            workers.append(pid)
    return workers


def wait_for_workers(server: RunningServer, count: int, seconds: float = 30) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        workers = worker_pids(server)
        if len(workers) == count:
            return workers
        time.sleep(0.05)
    raise AssertionError(f"expected {count} workers, found {worker_pids(server)}")


def kill_everything(server: RunningServer) -> int:
    """SIGKILL `devreg serve` and every process under it, all at once; returns how many."""
    pids = [server.process.pid, *descendants(server.process.pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.process.wait()
    deadline = time.monotonic() + 10
    while [pid for pid in pids if _alive(pid)]:  # gone, or a zombie: nothing runs any more
        assert time.monotonic() < deadline, [pid for pid in pids if _alive(pid)]
        time.sleep(0.01)
    FIGURES.fault("kill -9 (processes)", len(pids))
    return len(pids)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def connections_by_process(pids: Sequence[int], port: int) -> dict[int, int]:
    """How many established TCP connections to `port` each process holds."""
    inodes: set[str] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        local, state, inode = parts[1], parts[3], parts[9]
        if int(local.rsplit(":", 1)[1], 16) == port and state == "01":
            inodes.add(inode)
    held: dict[int, int] = {}
    for pid in pids:
        count = 0
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                count += 1
        held[pid] = count
    return held


async def spread_clients(
    make: Callable[[], httpx.AsyncClient],
    count: int,
    warm: str,
    workers: Sequence[int],
    port: int,
) -> list[httpx.AsyncClient]:
    """`count` clients, each with its connection open (a GET of `warm`), held by every
    worker: otherwise a race would be within one process only. Connections are opened one
    at a time (a burst of them may all go to one worker); while one worker holds them all,
    the last one (that worker's, then) is closed and opened again."""
    clients: list[httpx.AsyncClient] = []
    before = connections_by_process(workers, port)  # other clients' connections
    try:
        for _ in range(count):
            clients.append(make())
            await clients[-1].get(warm)
        for _ in range(500):
            now = connections_by_process(workers, port)
            held = {pid: now[pid] - before[pid] for pid in workers}
            assert sum(held.values()) == count, held
            if all(held.values()):
                return clients
            await clients.pop().aclose()
            clients.append(make())
            await clients[-1].get(warm)
        raise AssertionError(f"the connections stay with one worker: {held}")
    except BaseException:
        await asyncio.gather(*(client.aclose() for client in clients))
        raise


# --- private PostgreSQL and Redis, to stop and start at will


def _postgres_bin(name: str) -> str:
    for candidate in [
        shutil.which(name),
        *sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}")),
    ]:
        if candidate:
            return str(candidate)
    service_missing(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    raise AssertionError("unreachable")


class PrivatePostgres:
    """A PostgreSQL server of our own in a temporary directory (initdb, pg_ctl), on a free
    port. Run as the `postgres` user when we are root (initdb refuses root)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="devreg-pg-"))
        self.data = self.root / "data"
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        initdb = [_postgres_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"]
        self._run([*initdb, "--no-sync", "-E", "UTF8", "--locale=C"])
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run([*self.prefix, *argv], capture_output=True, text=True, check=False)
        assert done.returncode == 0, (argv, done.stdout, done.stderr)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run(
            [_postgres_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
             "-o", options, "-w", "-t", "60", "start"]
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run([_postgres_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """redis-server of our own on a free port, nothing persisted; killed and restarted at will."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            service_missing("redis-server is not installed (apt-get install redis-server)")
        self.binary = str(binary)
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.directory)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise AssertionError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
