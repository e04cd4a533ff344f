"""devreg's side of the set-up, through its own command line and APIs: `devreg init`, an
account, the devices (`devreg import devices`, or the store when that command is missing),
a bearer token, and a dialect D device with a certificate from devreg's CA.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.support.origins import TEST_ORIGIN

from benchmarks.servers import http
from devreg.core.quotas import DEVICES_SETTING

DEVREG = str(Path(sys.executable).parent / "devreg")
STORE_BATCH = 2_000  # concurrent inserts: devreg's group commit writes each batch at once


def devreg_env(
    data_dir: Path, database_url: str | None = None, source: Path | None = None
) -> dict[str, str]:
    """The environment of every devreg command: no DEVREG_* of the caller's, rate limits
    and the access log off (a benchmark measures neither). `source`: a checkout's `src/`,
    put alone on PYTHONPATH, so the venv's `devreg` runs that code (`run.py --against`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVREG_")}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    env.update(DEVREG_DATA_DIR=str(data_dir), DEVREG_RATE_LIMIT="0", DEVREG_ACCESS_LOG="0")
    # The account's device quota (1,000,000 per mode by default) would refuse the mTLS
    # device made after a 1M import: a benchmark measures the registry, not its quota.
    env[DEVICES_SETTING] = "1000000000"
    if database_url:
        env["DEVREG_DATABASE_URL"] = database_url
    return env


def devreg(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([DEVREG, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"devreg {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


@dataclass(frozen=True)
class Account:
    account_id: str  # acc_<hex>
    live_key: str

    @property
    def raw_id(self) -> bytes:
        return bytes.fromhex(self.account_id[4:])


def init_account(env: dict[str, str]) -> Account:
    """`devreg init`, then `devreg account create --json`."""
    devreg("init", env=env)
    made = json.loads(devreg("account", "create", "--name", "bench", "--json", env=env))
    return Account(made["account_id"], made["live_key"])


# --- devices ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Imported:
    count: int
    seconds: float  # wall time of the whole import, process start to exit
    method: str  # "devreg import devices" or the fallback
    reported_seconds: float = 0.0  # what the command says it took (its --json "seconds")


def has_import_command(env: dict[str, str]) -> bool:
    done = subprocess.run([DEVREG, "import", "--help"], env=env, capture_output=True, check=False)
    return done.returncode == 0


def import_devices(env: dict[str, str], account: Account, count: int, workdir: Path) -> Imported:
    """`count` live devices for `account`: with `devreg import devices FILE.jsonl` (one `{}`
    a line: a device with no reference), or, while devreg has no such command, through the
    store's own insert (what the command replaces)."""
    if not has_import_command(env):
        started = time.monotonic()
        asyncio.run(_insert_through_store(env, account.raw_id, count))
        return Imported(count, time.monotonic() - started, "store inserts (no `devreg import`)")
    lines = workdir / "devices.jsonl"
    with lines.open("w") as out:
        out.writelines("{}\n" for _ in range(count))
    started = time.monotonic()
    said = devreg("import", "devices", str(lines), "--account", account.account_id, "--json",
                  env=env)  # fmt: skip
    seconds = time.monotonic() - started
    lines.unlink()
    summary = json.loads(said)  # {"imported": N, "seconds": S}
    if summary.get("imported") != count:
        raise RuntimeError(f"devreg import devices said {said!r}, expected {count} devices")
    return Imported(count, seconds, "devreg import devices", float(summary.get("seconds", 0)))


async def _insert_through_store(env: dict[str, str], account_id: bytes, count: int) -> None:
    from devreg.core.clock import now_us
    from devreg.core.ids import new_id
    from devreg.core.records import Device, DeviceStatus
    from devreg.storage import open_store

    store = await open_store(env.get("DEVREG_DATABASE_URL"), Path(env["DEVREG_DATA_DIR"]))
    try:
        profile = await store.default_profile(account_id)
        assert profile is not None
        now = now_us()
        for start in range(0, count, STORE_BATCH):
            batch = [
                Device(
                    id=new_id(), account_id=account_id, live_mode=True, reference_id=None,
                    device_identifier=None, division_id=profile.division_id,
                    profile_id=profile.id, status=DeviceStatus.ACTIVE,
                    allow_read=profile.allow_read, allow_write=profile.allow_write,
                    allow_renew=profile.allow_renew, last_seen=None, created_at=now + n,
                    updated_at=now + n, version=1,
                )
                for n in range(start, min(start + STORE_BATCH, count))
            ]  # fmt: skip
            await asyncio.gather(
                *(store.insert_device(device, {}, TEST_ORIGIN) for device in batch)
            )
    finally:
        await store.close()


def device_ids(env: dict[str, str], account: Account) -> list[str]:
    """The account's devices as `dev_<hex>`, oldest first, read from devreg's database
    (the API would need 10,000 list pages at 1,000,000 devices)."""
    query = (
        "SELECT id FROM devices WHERE account_id = {p} AND status <> 'DELETED'"
        " ORDER BY created_at, id"
    )
    url = env.get("DEVREG_DATABASE_URL")
    if url:
        rows = asyncio.run(_postgres_rows(url, query.format(p="$1"), account.raw_id))
    else:
        path = Path(env["DEVREG_DATA_DIR"]) / "devreg.sqlite3"
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            rows = conn.execute(query.format(p="?"), (account.raw_id,)).fetchall()
    return ["dev_" + bytes(row[0]).hex() for row in rows]


async def _postgres_rows(url: str, query: str, param: bytes) -> list[tuple[bytes]]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return [(row[0],) for row in await conn.fetch(query, param)]
    finally:
        await conn.close()


# --- credentials ------------------------------------------------------------------------------


def login(base: str, account: Account) -> str:
    basic = base64.b64encode(f"{account.account_id}:{account.live_key}".encode()).decode()
    status, body = http(base + "/login", {"Authorization": "Basic " + basic})
    if status != 200:
        raise RuntimeError(f"login failed: {status} {body!r}")
    token: str = json.loads(body)["bearer_token"]
    return token


@dataclass(frozen=True)
class MtlsDevice:
    """A dialect D device whose profile has one field, with a certificate (and the key
    devreg made for it) written to files for nginx."""

    device_id: str  # UUID
    field_id: str  # UUID
    cert_path: Path
    key_path: Path

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_path.read_bytes())

    def certificate_facts(self) -> tuple[bytes, str, int, int, bytes]:
        """(DER, serial as devreg writes it, not_before us, not_after us, public key DER),
        for the baseline's copy of the certificate row."""
        cert = self.certificate()
        public = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return (
            cert.public_bytes(serialization.Encoding.DER),
            format(cert.serial_number, "x"),
            int(cert.not_valid_before_utc.timestamp() * 1_000_000),
            int(cert.not_valid_after_utc.timestamp() * 1_000_000),
            public,
        )


def make_mtls_device(base: str, account: Account, workdir: Path) -> MtlsDevice:
    """Through dialect D's API-key endpoints, as the README's quick start does."""
    api = base + "/iot/api/v2"
    profile = _post(api + "/device-profile", account, {
        "name": "bench profile",
        "fields": [{"name": "Field", "mandatory": False}],
        "device_api_allow_read": True, "device_api_allow_write": True,
        "device_api_allow_renew_certificate": True,
    })  # fmt: skip
    field_id = profile["fields"][0]["id"]
    device = _post(api + "/device", account, {
        "device_identifier": "bench-device", "device_profile_id": profile["id"],
        "fields": [{"id": field_id, "value": "initial"}],
    })  # fmt: skip
    issued = _post(f"{api}/device/{device['id']}/certificate", account, {"generate_key": True})
    cert_path, key_path = workdir / "device.pem", workdir / "device.key"
    cert_path.write_text(issued["pem"])
    key_path.touch(mode=0o600)
    key_path.write_text(issued["private_key"])
    return MtlsDevice(device["id"], field_id, cert_path, key_path)


def _post(url: str, account: Account, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"x-api-key": account.live_key, "Content-Type": "application/json"}
    status, answer = http(url, headers, json.dumps(body).encode(), "POST")
    if status != 201:
        raise RuntimeError(f"POST {url}: {status} {answer!r}")
    made: dict[str, Any] = json.loads(answer)
    return made
