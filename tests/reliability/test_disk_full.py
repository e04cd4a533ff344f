"""Issue 12 item 10, disk full, for real: the database lives on a small tmpfs (SQLite: the
whole data directory; PostgreSQL: a private server whose devreg database keeps its tables
and indexes in a tablespace on it), a file fills what is left, and devreg is written to
until the disk refuses. Every write is then a 507 with `Retry-After: 30` in its dialect's
envelope (F, D, EST plain text) and changes nothing, reads go on, `/healthz` answers 503
`storage_full`, and the log says so once; once the file is removed writes succeed again at
once, without a restart, health is ok again and the log says so once, and every
acknowledged write is there (SQLite: `PRAGMA integrity_check` is ok) while no refused one
is."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import os
import pwd
import sqlite3
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devreg.storage.disk_full import QUIET
from tests.conftest import service_missing
from tests.reliability.support import (
    D_BASE,
    FIGURES,
    PLAIN_TLS,
    PrivatePostgres,
    Tenant,
    d_error,
    f_error,
    new_tenant,
)
from tests.support.server import RunningServer, start_server

EST = "/.well-known/est"
MAX_WRITES = 5000  # bound on the writes that fill the disk; it takes a few hundred at most
VALUE = "v" * 1000  # dialect D values near their 1024-character limit fill it faster
RETRY_AFTER = "30"
FULL_WARNING = "storage full: writes are refused"
RECOVERED_INFO = "storage no longer full: writes succeed again"


@contextlib.contextmanager
def tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A fresh tmpfs of `size` on the new directory `mount`, unmounted afterwards (mounting
    needs root; the suite runs as root in CI)."""
    if os.geteuid() != 0:
        service_missing("the disk-full tests mount a small tmpfs, which needs root")
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        mount.rmdir()
        service_missing(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mount)], check=False)
        mount.rmdir()


def fill(path: Path) -> int:
    """Write zeros to `path` until its filesystem has no byte left; returns the bytes."""
    written = 0
    with path.open("wb", buffering=0) as out:
        for size in (1 << 20, 1 << 12, 1):
            chunk = bytes(size)
            while True:
                try:
                    written += out.write(chunk) or 0
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    return written


@dataclass
class Disk:
    """Where the database's files are, and how devreg reaches it."""

    mount: Path  # the small tmpfs
    data_dir: Path
    database_url: str | None
    sqlite_file: Path | None  # SQLite: the database file, for integrity_check


@contextlib.contextmanager
def sqlite_disk(tmp_path: Path) -> Iterator[Disk]:
    # The data directory is the mount itself: the server's log goes beside it, off the tmpfs.
    with tmpfs(tmp_path / "disk", "12m") as mount:
        yield Disk(mount, mount, None, mount / "devreg.sqlite3")


@contextlib.contextmanager
def postgres_disk(tmp_path: Path) -> Iterator[Disk]:
    """A private PostgreSQL whose database `devreg` puts every table and index devreg makes
    (default_tablespace) on the tmpfs; its catalogs and WAL stay on the normal disk."""
    # Not under tmp_path: the postgres user must be able to reach the tablespace.
    base = Path(tempfile.mkdtemp(prefix="devreg-full-"))
    base.chmod(0o755)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(base.rmdir)
        mount = cleanup.enter_context(tmpfs(base / "disk", "8m"))
        tablespace = mount / "tablespace"
        tablespace.mkdir()
        postgres_user = pwd.getpwnam("postgres")
        os.chown(mount, postgres_user.pw_uid, postgres_user.pw_gid)
        os.chown(tablespace, postgres_user.pw_uid, postgres_user.pw_gid)
        postgres = PrivatePostgres()
        try:

            async def prepare() -> None:
                conn = await asyncpg.connect(postgres.url)
                try:
                    await conn.execute(f"CREATE TABLESPACE small LOCATION '{tablespace}'")
                    await conn.execute("CREATE DATABASE devreg")
                    await conn.execute("ALTER DATABASE devreg SET default_tablespace = small")
                finally:
                    await conn.close()

            asyncio.run(prepare())
            url = postgres.url.rpartition("/")[0] + "/devreg"
            yield Disk(mount, tmp_path / "data", url, None)
        finally:
            postgres.remove()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Disk]:
    if request.param == "sqlite":
        with sqlite_disk(tmp_path) as made:
            yield made
    else:
        with postgres_disk(tmp_path) as made:
            yield made


@dataclass
class Writes:
    """Every write sent, one at a time, and its answer: each record's last acknowledged
    value, the refused creations, and the order of outcomes (stored or refused)."""

    tenant: Tenant
    f: httpx.Client
    d: httpx.Client
    f_records: dict[str, str] = field(default_factory=dict)  # id -> acknowledged reference
    d_records: dict[str, str] = field(default_factory=dict)  # id -> acknowledged identifier
    refused_creations: list[str] = field(default_factory=list)
    outcomes: list[bool] = field(default_factory=list)  # True: stored, False: 507
    count: int = 0

    def _name(self, kind: str) -> str:
        self.count += 1
        return f"{kind}-{self.count}"

    def create_f(self) -> httpx.Response:
        name = self._name("f")
        answer = self.f.post("/devices", json={"reference_id": name})
        if self._answered(answer, 201):
            self.f_records[answer.json()["id"]] = name
        elif answer.status_code == 507:
            self.refused_creations.append(name)
        return answer

    def create_d(self) -> httpx.Response:
        name = self._name("d")
        body = {"device_profile_id": self.tenant.profile_id, **self._d_body(name)}
        answer = self.d.post("/device", json=body)
        if self._answered(answer, 201):
            self.d_records[answer.json()["id"]] = name
        elif answer.status_code == 507:
            self.refused_creations.append(name)
        return answer

    def update_f(self) -> httpx.Response:
        api_id, name = next(iter(self.f_records)), self._name("f")
        answer = self.f.patch(f"/devices/{api_id}", json={"reference_id": name})
        if self._answered(answer, 200):
            self.f_records[api_id] = name
        return answer

    def update_d(self) -> httpx.Response:
        api_id, name = next(iter(self.d_records)), self._name("d")
        answer = self.d.put(f"/device/{api_id}", json=self._d_body(name))
        if self._answered(answer, 201):
            self.d_records[api_id] = name
        return answer

    def _d_body(self, name: str) -> dict[str, object]:
        return {"device_identifier": name, "fields": [{"id": self.tenant.field_id, "value": VALUE}]}

    def _answered(self, answer: httpx.Response, ok: int) -> bool:
        FIGURES.requests += 1
        # Never a 500 or a plain 503: the disk is full, and that is what the answer says.
        assert answer.status_code in (ok, 507), (answer.status_code, answer.text)
        self.outcomes.append(answer.status_code == ok)
        return answer.status_code == ok


def until_refused(write: Callable[[], httpx.Response]) -> httpx.Response:
    """Repeat a kind of write until the disk refuses it: PostgreSQL still finds room for a
    small row in the free space of a page it has, SQLite's WAL has none left at once."""
    for _ in range(MAX_WRITES):
        answer = write()
        if answer.status_code == 507:
            return answer
    raise AssertionError(f"{MAX_WRITES} writes and none was refused")


def assert_f_full(answer: httpx.Response) -> None:
    assert f_error(answer)[:3] == (507, "api_error", "insufficient_storage"), answer.text
    assert answer.headers["retry-after"] == RETRY_AFTER, answer.headers


def assert_d_full(answer: httpx.Response) -> None:
    assert d_error(answer)[:2] == (507, "insufficient_storage"), answer.text
    assert answer.headers["retry-after"] == RETRY_AFTER, answer.headers


def est_request(server: RunningServer, device_id: str, secret: str) -> httpx.Response:
    """`simpleenroll` with the device's one-time secret and a fresh P-256 key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    body = base64.b64encode(csr.public_bytes(serialization.Encoding.DER))
    context = ssl.create_default_context(cafile=str(server.data_dir / "ca.pem"))
    FIGURES.requests += 1
    return httpx.post(
        f"https://127.0.0.1:{server.est_port}{EST}/simpleenroll",
        content=body,
        headers={"content-type": "application/pkcs10"},
        auth=(device_id, secret),
        verify=context,
        timeout=30,
    )


def health(server: RunningServer) -> httpx.Response:
    FIGURES.requests += 1
    return httpx.get(server.base_url + "/healthz", timeout=10)


def test_a_full_disk_is_507_reported_once_and_recovers_without_a_restart(disk: Disk) -> None:
    sqlite = disk.sqlite_file is not None
    server = start_server(disk.data_dir, database_url=disk.database_url, rate_limit=0, est=True)
    try:
        tenant = new_tenant(server)
        with (
            httpx.Client(base_url=server.base_url, headers=tenant.f_headers, verify=PLAIN_TLS,
                         timeout=30) as f,
            httpx.Client(base_url=server.base_url + D_BASE, headers=tenant.d_headers,
                         verify=PLAIN_TLS, timeout=30) as d,
        ):  # fmt: skip
            writes = Writes(tenant, f, d)
            for _ in range(3):
                assert writes.create_f().status_code == 201
                assert writes.create_d().status_code == 201
            enrolling = next(iter(writes.d_records))
            made = d.post(f"/device/{enrolling}/enrollment-secret")
            assert made.status_code == 201, made.text
            secret = made.json()["secret"]

            # Fill the disk, then write until every kind of write finds no room.
            filler = disk.mount / "filler"
            filled = fill(filler)
            FIGURES.fault("disk filled")
            # Small rows first: once they find no room, larger writes find none either (on
            # PostgreSQL the other way round takes many more writes between two refusals).
            assert_f_full(until_refused(writes.create_f))
            assert_d_full(until_refused(writes.create_d))
            assert_f_full(until_refused(writes.update_f))
            assert_d_full(until_refused(writes.update_d))
            # The health check says what is wrong, and reads go on.
            sick = health(server)
            assert sick.status_code == 503, sick.text
            assert sick.json() == {"status": "degraded", "database": "storage_full"}
            for api_id, name in writes.f_records.items():
                assert f.get(f"/devices/{api_id}").json()["reference_id"] == name
            enrolled = est_request(server, enrolling, secret)
            if sqlite or enrolled.status_code == 507:  # PostgreSQL may find it room
                assert enrolled.status_code == 507, (enrolled.status_code, enrolled.text)
                assert enrolled.headers["content-type"].startswith("text/plain")
                assert enrolled.headers["retry-after"] == RETRY_AFTER, enrolled.headers
                assert "disk space" in enrolled.text, enrolled.text

            # Space freed: writes succeed again at once, with no restart; the episode is over
            # (health and log) with the first write stored after QUIET s without a refusal.
            filler.unlink()
            assert writes.create_f().status_code == 201
            assert writes.create_d().status_code == 201
            assert writes.update_f().status_code == 200
            assert writes.update_d().status_code == 201
            deadline = time.monotonic() + QUIET + 30
            while health(server).status_code != 200:
                assert time.monotonic() < deadline, server.log()[-4000:]
                time.sleep(0.5)
                assert writes.update_f().status_code == 200
            assert health(server).json() == {"status": "ok"}
            if sqlite:  # the refused enrollment spent nothing: the secret still works
                assert est_request(server, enrolling, secret).status_code == 200

            # Every acknowledged write is there, and no refused one.
            for api_id, name in writes.f_records.items():
                assert f.get(f"/devices/{api_id}").json()["reference_id"] == name
            for api_id, name in writes.d_records.items():
                got = d.get(f"/device/{api_id}").json()
                assert got["device_identifier"] == name, got
                assert got["fields"][0]["value"] == VALUE, got
            for name in writes.refused_creations:
                if name.startswith("f-"):
                    found = f.get("/devices", params={"reference_id": name}).json()["data"]
                else:
                    found = d.get("/device", params={"device_identifier": name}).json()["records"]
                assert found == [], (name, found)
    finally:
        server.stop()
    acknowledged, refused = writes.outcomes.count(True), writes.outcomes.count(False)
    FIGURES.writes_checked += len(writes.f_records) + len(writes.d_records)
    FIGURES.notes.append(
        f"disk full ({'sqlite' if sqlite else 'postgres'}): {filled} bytes of filler,"
        f" {acknowledged} writes acknowledged, {refused} refused with 507"
    )
    # One warning when the disk filled and one line when writes came back, not a line per
    # refused request (PostgreSQL fits a small row now and then between refusals: a write
    # stored less than QUIET s after a refusal does not end the episode).
    log = server.log()
    assert log.count(FULL_WARNING) == 1, log[-4000:]
    assert log.count(RECOVERED_INFO) == 1, log[-4000:]
    assert "service unavailable" not in log and "Traceback" not in log, log[-4000:]
    if sqlite:
        with contextlib.closing(sqlite3.connect(disk.sqlite_file)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
