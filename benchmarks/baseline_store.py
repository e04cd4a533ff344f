"""The baselines' SQLite file: devreg's tables (copied in baseline_sql.py), opened in WAL
with `synchronous=NORMAL` (a commit is not fsync'd), and seeded directly with executemany.

Both SQLite baselines (plain HTTP, dialect F: baseline_sqlite.py; TLS, dialect D:
baseline_mtls.py) serve the one account in the file, in live mode, as devreg serves the
benchmark's one account.
"""

from __future__ import annotations

import hashlib
import sqlite3
import ssl
import time
import uuid
from dataclasses import dataclass

from benchmarks.baseline_sql import DEVICE_COLUMNS, SQLITE_SCHEMA

SEED_CHUNK = 50_000  # rows per executemany: bounded memory at 1,000,000 devices


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True)
class Seeded:
    account_id: bytes
    division_id: bytes
    profile_id: bytes  # the default profile: no fields, every flag true
    ids: list[bytes]  # the devices, oldest first


def seed(path: str, count: int) -> Seeded:
    """A fresh file: one account, its default division and profile, `count` live devices
    made one microsecond apart (so newest-first order is creation order reversed)."""
    conn = connect(path)
    conn.executescript(SQLITE_SCHEMA)
    now = now_us()
    account, division, profile = (uuid.uuid4().bytes for _ in range(3))
    ids = [uuid.uuid4().bytes for _ in range(count)]
    conn.execute("BEGIN")
    conn.execute("INSERT INTO accounts VALUES (?, 'bench', ?)", (account, now))
    conn.execute(
        "INSERT INTO divisions VALUES (?, ?, 'Default', 1, ?, ?)", (division, account, now, now)
    )
    conn.execute(
        "INSERT INTO device_profiles VALUES (?, ?, ?, 'Default', 1, 1, 1, 1, ?, ?)",
        (profile, account, division, now, now),
    )
    insert = (
        f"INSERT INTO devices ({DEVICE_COLUMNS})"
        " VALUES (?, ?, 1, NULL, NULL, ?, ?, 'ACTIVE', 1, 1, 1, NULL, ?, ?, 1)"
    )
    for start in range(0, count, SEED_CHUNK):
        chunk = ids[start : start + SEED_CHUNK]
        rows = [(i, account, division, profile, now + start + n, now + start + n)
                for n, i in enumerate(chunk)]  # fmt: skip
        conn.executemany(insert, rows)
    conn.execute("COMMIT")
    conn.close()
    return Seeded(account, division, profile, ids)


@dataclass(frozen=True)
class MtlsDevice:
    device_id: bytes
    field_id: bytes


def add_mtls_device(
    path: str,
    seeded: Seeded,
    cert_der: bytes,
    serial: str,
    not_before_us: int,
    not_after_us: int,
    public_key_der: bytes,
) -> MtlsDevice:
    """What devreg holds for the dialect D device: a profile with one optional field, the
    device with a value for it, and its certificate (same DER, so same fingerprint)."""
    conn = connect(path)
    now = now_us()
    profile, field, device, cert = (uuid.uuid4().bytes for _ in range(4))
    account, division = seeded.account_id, seeded.division_id
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO device_profiles VALUES (?, ?, ?, 'bench profile', 0, 1, 1, 1, ?, ?)",
        (profile, account, division, now, now),
    )
    conn.execute("INSERT INTO profile_fields VALUES (?, ?, 'Field', 0, 0)", (field, profile))
    conn.execute(
        f"INSERT INTO devices ({DEVICE_COLUMNS})"
        " VALUES (?, ?, 1, NULL, 'bench-device', ?, ?, 'ACTIVE', 1, 1, 1, NULL, ?, ?, 1)",
        (device, account, division, profile, now, now),
    )
    conn.execute("INSERT INTO device_field_values VALUES (?, ?, 'initial')", (device, field))
    conn.execute(
        "INSERT INTO certificates VALUES (?, ?, ?, ?, ?, ?, ?, 'devreg', ?, ?, ?, NULL, NULL,"
        " NULL, NULL)",
        (
            cert, account, device, serial, hashlib.sha256(cert_der).digest(),
            hashlib.sha256(public_key_der).digest(), ssl.DER_cert_to_PEM_cert(cert_der),
            not_before_us, not_after_us, now,
        ),
    )  # fmt: skip
    conn.execute("COMMIT")
    conn.close()
    return MtlsDevice(device, field)
