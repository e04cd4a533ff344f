"""What the change log adds to a PATCH at the store, without HTTP: the SQLite baseline's
statements (devreg's, baseline_sql.py) timed in one process on a seeded file, one PATCH
at a time, the plain `UPDATE ... RETURNING` against the logged transaction, and the
logged one cut into its parts. Where the time of F PATCH's "baseline+log" goes.

    .venv/bin/python -m benchmarks.change_log_cost [--devices 10000] [--patches 5000]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import baseline_sql as q
from benchmarks import baseline_sqlite as b
from benchmarks import baseline_store


def _per_call_us(work: Callable[[int], object], count: int) -> float:
    samples = []
    for start in range(0, count, 500):
        began = time.perf_counter()
        for n in range(start, min(count, start + 500)):
            work(n)
        samples.append((time.perf_counter() - began) / (min(count, start + 500) - start))
    return statistics.median(samples) * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.change_log_cost",
                                     description=__doc__)  # fmt: skip
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--patches", type=int, default=5_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "b.sqlite3")
        seeded = baseline_store.seed(db, args.devices)
        conn = baseline_store.connect(db)
        ids = list(seeded.ids)
        random.Random(14).shuffle(ids)
        account, tag = seeded.account_id, f"r{time.time_ns()}-"

        def params(n: int) -> tuple[object, ...]:
            return (f"{tag}{n}", time.time_ns() // 1000, ids[n % len(ids)], account, 1)

        def plain(n: int) -> object:
            return conn.execute(q.UPDATE_REFERENCE, params(n)).fetchall()

        def logged(n: int) -> object:
            return b.patch_logged(conn, params(n + args.patches))

        def update_in_transaction(n: int) -> object:
            conn.execute("BEGIN IMMEDIATE")
            rows = conn.execute(q.UPDATE_REFERENCE, params(n + 2 * args.patches)).fetchall()
            conn.execute("COMMIT")
            return rows

        device_id = ids[0]
        old = conn.execute(q.SELECT_ANY_DEVICE_BY_ID, (device_id,)).fetchone()

        def selects(_: int) -> object:
            conn.execute(q.SELECT_ANY_DEVICE_BY_ID, (device_id,)).fetchall()
            return conn.execute(q.SELECT_VALUES_OF_ONE, (device_id,)).fetchall()

        def records_and_hash(n: int) -> object:
            entry = (n, n, account, True, *b.ACTOR, "req_" + os.urandom(16).hex(),
                     "device.update", "device", device_id, 2, b.device_record_json(old, []),
                     b.device_record_json(old, []))  # fmt: skip
            return b.entry_hash(bytes(32), entry)

        rows = [
            ("UPDATE ... RETURNING alone (autocommit): the plain baseline", plain),
            ("the same UPDATE in BEGIN IMMEDIATE ... COMMIT", update_in_transaction),
            ("the logged PATCH (baseline+log): the whole transaction", logged),
            ("  of it: the two SELECTs (device, values)", selects),
            ("  of it: the two device records' JSON and the SHA-256", records_and_hash),
        ]
        print(f"| at the store, {args.devices:,} devices, {args.patches:,} calls | µs per call |")
        print("|---|---|")
        for name, work in rows:
            print(f"| {name} | {_per_call_us(work, args.patches):.1f} |", flush=True)
        (entries,) = conn.execute("SELECT COUNT(*) FROM change_log").fetchone()
        print(f"(change_log rows written: {entries:,})")
        conn.close()


if __name__ == "__main__":
    main()
