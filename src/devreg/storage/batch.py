"""What the writes of one group-commit batch share until its COMMIT (storage/group_commit.py
on SQLite, storage/postgres_batch.py on PostgreSQL), and `seal`, which writes it.

No write reads these back within its batch (the log's readers and pruning read the
committed head and stop below it; device counts are read outside transactions, and by an
import, which is a transaction of its own: on SQLite the batch's writes queued before it
are sealed first), so they wait for the end of the batch: there the head and the count
rows are taken once per batch, in one order (on PostgreSQL their row locks are then held
only from there to the COMMIT, and two batches cannot deadlock over them)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from devreg.changelog.entries import Change
from devreg.core.records import Origin
from devreg.storage import change_log, sql
from devreg.storage.change_log import InsertMany, Unsealed

if TYPE_CHECKING:
    from devreg.storage.base import SqlRunner

CountKey = tuple[bytes, bool, int]  # a device_counts row: account, mode, slot
Mark = tuple[int, int]


@dataclass(slots=True)
class Batch:
    unsealed: list[Unsealed] = field(default_factory=list)
    count_deltas: list[tuple[CountKey, int]] = field(default_factory=list)

    def defer_entries(self, origin: Origin, changes: Sequence[Change], now: int) -> None:
        self.unsealed.append(Unsealed(origin, changes, now))

    def defer_count(self, key: CountKey, delta: int) -> None:
        self.count_deltas.append((key, delta))

    def mark(self) -> Mark:
        """Where to cut back to if the write about to run fails (its savepoint is undone)."""
        return len(self.unsealed), len(self.count_deltas)

    def undo_to(self, mark: Mark) -> None:
        del self.unsealed[mark[0] :]
        del self.count_deltas[mark[1] :]


async def seal(tx: SqlRunner, batch: Batch, insert_rows: InsertMany) -> None:
    """Write what the batch's writes left for the end, and empty it: the count rows'
    summed deltas (in key order), then the log's entries (change_log.seal)."""
    totals: Counter[CountKey] = Counter()
    for key, delta in batch.count_deltas:
        totals[key] += delta
    for (account_id, live_mode, slot), delta in sorted(totals.items()):
        if delta:
            await tx.run(sql.ADD_TO_DEVICE_COUNT, (account_id, live_mode, slot, delta))
    await change_log.seal(tx, batch.unsealed, insert_rows)
    batch.unsealed.clear()
    batch.count_deltas.clear()
