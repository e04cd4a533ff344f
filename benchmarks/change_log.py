"""The change log's reads at scale (issue 14): a device's history page and the device "as
of" a moment, with 10,000 entries for that device among 10,000,000 in the log, through
the real HTTP server (`devreg serve` on the seeded data dir, dialect D, x-api-key).

    .venv/bin/python -m benchmarks.change_log [--entries 10000000] [--device-entries 10000]

Seeding (the benchmark's own fast path, not devreg's writes): `devreg init`, an account
(`devreg account create`) and --devices devices (`devreg import devices`), all logged by
devreg itself; then, with devreg stopped, the log's table is filled directly with
multi-row INSERTs (executemany, 100,000 rows per transaction, `synchronous=OFF`):
every --entries / --device-entries-th entry is a `device.update` of the measured device
(before and after are whole device records, as devreg writes them: a new reference_id and
version each time), the others are filler: `device.update` entries of made-up objects
(10 consecutive entries per object id, a small `after`, no `before`), ids increasing as
UUIDv7 ids do. Every entry is chained: seq follows the head, time never goes back
(1 µs apart), prev_hash and hash are devreg's SHA-256 chain (the first rows are checked
with devreg's own changelog/chain.py), and the head is moved to the last one, so devreg's
next write continues the chain. The device's row gets the last entry's version.

Then devreg serves the data dir (pinned to core 0, wrk to core 1) and wrk (32 connections,
paced at --rate requests/s in all, as the deep list page in benchmarks.run; 200 and 50 by
default) measures, for --seconds each: the first history page (limit 20), a deep one (the
oldest 20 of the device's entries: offset = device entries - 20), and as-of reads at
random times between the first and the last seeded entry; then devreg's statements alone
on the same file. Target: p99 < 10 ms each.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import queue
import random
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from benchmarks.devreg_setup import DEVREG, device_ids, devreg_env, import_devices, init_account
from benchmarks.servers import REPO, free_port, http, serving
from benchmarks.stages import LOAD_CORE, SERVER_CORE
from benchmarks.wrk import CONNECTIONS, Load, run_wrk

CHUNK = 100_000  # rows per executemany and transaction
FILLER_RUN = 10  # consecutive entries per filler object
P99_TARGET_MS = 10.0
HISTORY_LIMIT = 20
RESULTS = REPO / "benchmarks" / "results"
_encode = msgspec.json.encode
INSERT = (
    "INSERT INTO change_log (seq, time, account_id, live_mode, actor_kind, actor_id,"
    " request_id, action, object_type, object_id, object_version, before, after, prev_hash,"
    " hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass
class Seeded:
    entries: int  # seeded by the benchmark (devreg's own entries come before them)
    device_entries: int
    seconds: float
    first_time: int  # µs, the first and last seeded entry
    last_time: int
    db_mb: float


def _hash(prev: bytes, row: tuple[Any, ...]) -> bytes:
    """changelog/chain.py entry_hash over an entry_row's first 13 columns."""
    (seq, at, account, live, kind, actor, request, action, object_type, object_id, version,
     before, after) = row  # fmt: skip
    content = _encode([seq, at, account.hex(), live, kind, actor, request, action, object_type,
                       object_id.hex(), version, before, after])  # fmt: skip
    return hashlib.sha256(prev + content).digest()


def seed_log(path: Path, device_id: bytes, entries: int, device_entries: int) -> Seeded:
    started = time.monotonic()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # the benchmark's own file: a crash discards it
    conn.execute("PRAGMA cache_size = -1000000")
    (last_seq, head_time, head_hash) = conn.execute(
        "SELECT seq, time, hash FROM change_head WHERE one = 1"
    ).fetchone()
    (account_id, live_mode, template) = conn.execute(
        "SELECT account_id, live_mode, after FROM change_log WHERE object_id = ?"
        " ORDER BY time DESC, seq DESC LIMIT 1",
        (device_id,),
    ).fetchone()
    live_mode = None if live_mode is None else bool(live_mode)
    record = json.loads(template)
    version = int(record["version"])
    every = max(1, entries // device_entries)
    t0 = max(int(head_time), time.time_ns() // 1000) + 1
    prev = bytes(head_hash)
    actor = ("api_key", "key_" + "0" * 32)
    filler_base = int.from_bytes(uuid.uuid4().bytes[8:], "big")
    first_filler = int.from_bytes(device_id[:8], "big") + 1
    filler_insert = (
        "INSERT INTO change_log (seq, time, account_id, live_mode, actor_kind, actor_id,"
        " request_id, action, object_type, object_id, object_version, before, after,"
        f" prev_hash, hash) VALUES (?, ?, X'{bytes(account_id).hex()}', {int(bool(live_mode))},"
        f" '{actor[0]}', '{actor[1]}', ?, 'device.update', 'device', ?, ?, NULL, ?, ?, ?)"
    )  # the filler's constant columns as literals: fewer parameters to bind per row

    def chunks() -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
        nonlocal record, version, prev
        seq, done_device = int(last_seq), 0
        for start in range(0, entries, CHUNK):
            device_rows, filler_rows = [], []
            for n in range(start, min(entries, start + CHUNK)):
                seq += 1
                at = t0 + n
                request_id = f"req_{n:032x}"
                if n % every == every - 1 and done_device < device_entries:
                    before = _encode(record).decode()
                    version += 1
                    record = {**record, "reference_id": f"hist-{done_device}",
                              "version": version, "updated": at}  # fmt: skip
                    after = _encode(record).decode()
                    row = (seq, at, account_id, live_mode, *actor, request_id, "device.update",
                           "device", device_id, version, before, after)  # fmt: skip
                    digest = _hash(prev, row)
                    device_rows.append((*row, prev, digest))
                    done_device += 1
                else:
                    obj = n // FILLER_RUN
                    object_id = (first_filler + obj).to_bytes(8, "big") + (
                        (filler_base + obj) % (1 << 64)
                    ).to_bytes(8, "big")
                    object_version = n % FILLER_RUN + 1
                    after = f'{{"id":"{object_id.hex()}","version":{object_version}}}'
                    row = (seq, at, account_id, live_mode, *actor, request_id,
                           "device.update", "device", object_id, object_version,
                           None, after)  # type: ignore[assignment]  # fmt: skip
                    digest = _hash(prev, row)
                    filler_rows.append(
                        (seq, at, request_id, object_id, object_version, after, prev, digest)
                    )
                prev = digest
            yield device_rows, filler_rows
        done[0] = seq
        done[1] = done_device

    # The rows are made in a thread while the previous chunk is written: sqlite3 lets go of
    # the GIL while SQLite works.
    done = [0, 0]
    ready: queue.Queue[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]] | None] = queue.Queue(
        maxsize=2
    )

    def produce() -> None:
        for chunk in chunks():
            ready.put(chunk)
        ready.put(None)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    written = 0
    while (chunk := ready.get()) is not None:
        device_rows, filler_rows = chunk
        conn.execute("BEGIN")
        conn.executemany(filler_insert, filler_rows)
        conn.executemany(INSERT, device_rows)
        conn.execute("COMMIT")
        written += len(device_rows) + len(filler_rows)
        if written % 1_000_000 == 0 or written == entries:
            print(f"  seeded {written:,} entries ({time.monotonic() - started:.0f} s)", flush=True)
    producer.join()
    seq, done_device = done
    last_time = t0 + entries - 1
    conn.execute("BEGIN")
    conn.execute("UPDATE change_head SET seq = ?, time = ?, hash = ? WHERE one = 1",
                 (seq, last_time, prev))  # fmt: skip
    conn.execute("UPDATE devices SET version = ?, reference_id = ?, updated_at = ? WHERE id = ?",
                 (version, record["reference_id"], record["updated"], device_id))  # fmt: skip
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    _check_chain(path, int(last_seq))
    return Seeded(entries, done_device, time.monotonic() - started, t0, last_time,
                  path.stat().st_size / 1e6)  # fmt: skip


def _check_chain(path: Path, after_seq: int) -> None:
    """The first seeded rows, and the last, with devreg's own chain code."""
    from devreg.changelog.chain import entry_hash
    from devreg.storage.change_log import entry_from_row
    from devreg.storage.sql import CHANGE_COLUMNS

    conn = sqlite3.connect(path)
    query = f"SELECT {CHANGE_COLUMNS} FROM change_log WHERE seq > ? ORDER BY seq LIMIT 2000"
    rows = conn.execute(query, (after_seq - 1,)).fetchall()
    (last,) = conn.execute(f"SELECT {CHANGE_COLUMNS} FROM change_log ORDER BY seq DESC LIMIT 1")
    head = conn.execute("SELECT seq, hash FROM change_head").fetchone()
    conn.close()
    previous = None
    for row in [*rows, last]:
        entry = entry_from_row(row)
        if previous is not None and entry.seq == previous.seq + 1:
            assert entry.prev_hash == previous.hash, entry.seq
        assert entry_hash(entry.prev_hash, entry) == entry.hash, entry.seq
        previous = entry
    assert (head[0], bytes(head[1])) == (entry_from_row(last).seq, entry_from_row(last).hash)


def sql_timings(path: Path, device_id: bytes, deep: int, first: int, last: int) -> list[str]:
    """Where a read's time goes: devreg's statements alone (sqlite3, the same file, warm),
    p50 and p99 of 200 runs each; the rest of an answer's time is devreg's rendering."""
    from devreg.storage import sql

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rng = random.Random(15)
    cases: list[tuple[str, str, Callable[[], tuple[Any, ...]]]] = [
        ("SELECT_OBJECT_HISTORY limit 20 offset 0", sql.SELECT_OBJECT_HISTORY,
         lambda: (device_id, HISTORY_LIMIT, 0)),
        (f"SELECT_OBJECT_HISTORY limit 20 offset {deep:,}", sql.SELECT_OBJECT_HISTORY,
         lambda: (device_id, HISTORY_LIMIT, deep)),
        (f"SELECT_OBJECT_HISTORY_SEQS limit 20 offset {deep:,}", sql.SELECT_OBJECT_HISTORY_SEQS,
         lambda: (device_id, HISTORY_LIMIT, deep)),
        ("COUNT_OBJECT_HISTORY", sql.COUNT_OBJECT_HISTORY, lambda: (device_id,)),
        ("SELECT_OBJECT_AS_OF (random time)", sql.SELECT_OBJECT_AS_OF,
         lambda: (device_id, rng.randint(first, last))),
    ]  # fmt: skip
    lines = []
    for name, statement, params in cases:
        samples = []
        for _ in range(220):
            started = time.perf_counter()
            conn.execute(statement, params()).fetchall()
            samples.append((time.perf_counter() - started) * 1000)
        samples = sorted(samples[20:])
        lines.append(f"| {name} | {samples[len(samples) // 2]:.3f} |"
                     f" {samples[int(len(samples) * 0.99)]:.3f} |")  # fmt: skip
    conn.close()
    return lines


def rfc3339_us(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Measured:
    name: str
    path: str  # one example
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    bytes: int  # of the example's answer

    @property
    def met(self) -> bool:
        return self.p99_ms < P99_TARGET_MS and self.errors == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.change_log", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--entries", type=int, default=10_000_000, help="seeded (10,000,000)")
    parser.add_argument("--device-entries", type=int, default=10_000,
                        help="of them for the measured device (10,000)")  # fmt: skip
    parser.add_argument("--devices", type=int, default=1_000, help="devices imported (1,000)")
    parser.add_argument("--seconds", type=float, default=10, help="per measurement (10)")
    parser.add_argument("--rate", type=int, action="append",
                        help="requests/s in all, repeatable (200 and 50: at 200 a history"
                        " page's own time already queues the requests)")  # fmt: skip
    parser.add_argument("--json", type=Path, default=RESULTS / "change_log.json")
    parser.add_argument("--postgres-url", help="not implemented yet: SQLite only")
    args = parser.parse_args(argv)
    args.rate = args.rate or [200, 50]
    if args.postgres_url:
        print("--postgres-url: not implemented yet (the seeding is SQLite's)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="devreg-changelog-") as tmp:
        return run(args, Path(tmp))


def run(args: argparse.Namespace, workdir: Path) -> int:
    data = workdir / "data"
    env = devreg_env(data)
    account = init_account(env)
    imported = import_devices(env, account, args.devices, workdir)
    ids = device_ids(env, account)
    device = bytes.fromhex(ids[len(ids) // 2][4:])
    print(f"devreg: account and {args.devices:,} devices ({imported.seconds:.1f} s)", flush=True)
    seeded = seed_log(data / "devreg.sqlite3", device, args.entries, args.device_entries)
    print(f"seeded {seeded.entries:,} entries ({seeded.device_entries:,} for the device) in"
          f" {seeded.seconds:.1f} s, file {seeded.db_mb:,.0f} MB", flush=True)  # fmt: skip
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [DEVREG, "serve", "--port", str(port), "--mtls-port", "0", "--est-port", "0"]
    headers = {"x-api-key": account.live_key}
    device_path = f"/iot/api/v2/device/{uuid.UUID(bytes=device)}"
    deep = max(0, seeded.device_entries - HISTORY_LIMIT)
    rng = random.Random(14)
    as_of = [
        f"{device_path}?as_of={rfc3339_us(rng.randint(seeded.first_time, seeded.last_time))}"
        for _ in range(10_000)
    ]
    loads = [
        ("history, first page (limit 20)", [f"{device_path}/history?limit={HISTORY_LIMIT}"]),
        (f"history, offset {deep:,} (limit 20)",
         [f"{device_path}/history?limit={HISTORY_LIMIT}&offset={deep}"]),
        ("as-of, random times", as_of),
    ]  # fmt: skip
    measured: list[Measured] = []
    with serving(
        "devreg", argv, env, workdir / "devreg.log", SERVER_CORE, base + "/healthz"
    ) as server:
        print(f"devreg (pid {server.pid}) on core {SERVER_CORE}, wrk on core {LOAD_CORE}")
        for (name, paths), rate in [(load, rate) for load in loads for rate in args.rate]:
            name = f"{name}, {rate} req/s"
            delay_ms = round(1000 * CONNECTIONS / rate)
            status, body = http(base + paths[0], headers)
            assert status == 200, (paths[0], status, body[:300])
            answer = json.loads(body)
            if "records" in answer:
                assert answer["total"] >= seeded.device_entries, answer["total"]
                assert len(answer["records"]) == HISTORY_LIMIT
            load = Load(base, "GET", paths, headers, delay_ms=delay_ms)
            run_wrk(load, 1, LOAD_CORE, workdir)  # warm-up
            result = run_wrk(load, args.seconds, LOAD_CORE, workdir)
            measured.append(Measured(name, paths[0], result.requests_per_s, result.p50_ms,
                                     result.p99_ms, result.errors, len(body)))  # fmt: skip
            print(f"  {name}: {result.requests_per_s:,.0f} req/s, p50 {result.p50_ms:.2f} ms,"
                  f" p99 {result.p99_ms:.2f} ms, errors {result.errors}", flush=True)  # fmt: skip
    print()
    print(f"| read ({seeded.entries:,} entries, {seeded.device_entries:,} for the device) |"
          " answer kB | req/s | p50 ms | p99 ms | target | verdict |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for m in measured:
        print(
            f"| {m.name} | {m.bytes / 1e3:.1f} | {m.requests_per_s:,.0f} | {m.p50_ms:.2f} |"
            f" {m.p99_ms:.2f} | p99 < {P99_TARGET_MS:g} ms | {'met' if m.met else 'MISSED'} |"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "options": {k: str(v) for k, v in vars(args).items()},
        "seeded": asdict(seeded),
        "measured": [asdict(m) | {"met": m.met} for m in measured],
    }, indent=2) + "\n")  # fmt: skip
    print()
    print("| devreg's statement alone (sqlite3, warm) | p50 ms | p99 ms |")
    print("|---|---|---|")
    timings = sql_timings(data / "devreg.sqlite3", device, deep, seeded.first_time,
                          seeded.last_time)  # fmt: skip
    print("\n".join(timings))
    document = json.loads(args.json.read_text())
    args.json.write_text(json.dumps({**document, "statements": timings}, indent=2) + "\n")
    print(f"written {args.json}")
    return 0 if all(m.met for m in measured) else 1


if __name__ == "__main__":
    sys.exit(main())
