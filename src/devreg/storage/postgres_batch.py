"""Group commit for PostgreSQL: the writes of one worker that arrive together run in one
transaction, each under its own SAVEPOINT (one that fails, a duplicate say, fails alone),
and share the change log's head and one COMMIT.

Every logged write takes the one `change_head` row's lock and holds it to its COMMIT, so
writers of every worker and host commit one at a time: one write, one WAL flush, per lock
hold. A batch takes the lock once, at its end (storage/batch.py:seal), for all its
writes. While a batch commits, the event loop goes on queueing the next one, so batches
grow with the load; a write alone pays three statements more than a transaction of its
own would.

Two batches (of two workers or hosts) may each hold a row the other's next write wants.
The rows every write takes (the head, the device counter's) are taken only at the end, in
one order; for the rest, a write that waits longer than LOCK_WAIT, or that PostgreSQL
picks as a deadlock's victim, is undone to its savepoint (which frees what it held) and
runs again on its own, in a transaction of its own, as it would without batching.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from devreg.core.store import StoreUnavailable
from devreg.storage.base import SqlRunner
from devreg.storage.batch import Batch, seal
from devreg.storage.disk_full import DiskFullEpisodes
from devreg.storage.postgres_runner import Contended, PostgresRunner, pooled, translated_errors

T = TypeVar("T")
log = logging.getLogger("devreg.storage")

# Writes per batch. Each is a subtransaction, and a backend past 64 of them in one
# transaction makes every other backend's snapshots slower (the "subxid overflow").
MAX_WRITES = 48
# How long a write of a batch may wait for a row another transaction holds before it is
# undone and run on its own instead (a transaction of its own, as without batching, that
# waits as long as it takes): one blocked write must not hold up the worker's batches,
# and a deadlock between two batches is broken at once (PostgreSQL's own detection waits
# `deadlock_timeout`, 1 s by default). The batch's end (the counts and the head) waits as
# long as it takes.
LOCK_WAIT = "200ms"
# How often a write on its own that lost a deadlock runs again before its caller is told
# 503.
MAX_TRIES = 5

_BEGIN = f"BEGIN; SET LOCAL lock_timeout = '{LOCK_WAIT}'; SAVEPOINT one_write"
_TO_SEAL = "SET LOCAL lock_timeout TO DEFAULT"  # the operator's setting, if any
_NEXT = "RELEASE SAVEPOINT one_write; SAVEPOINT one_write"  # after a write that succeeded
_UNDO = "ROLLBACK TO SAVEPOINT one_write"  # after one that failed: the savepoint stays


@dataclass(slots=True)
class _Queued:
    work: Callable[[SqlRunner], Awaitable[Any]]
    answer: asyncio.Future[Any]


class _BatchRunner(PostgresRunner):
    """The batch's connection, and what its writes share until the COMMIT."""

    __slots__ = ("batch",)

    def __init__(self, conn: asyncpg.Connection, disk_full: DiskFullEpisodes) -> None:
        super().__init__(conn, disk_full)
        self.batch = Batch()


class PostgresGroupCommit:
    def __init__(self, pool: asyncpg.Pool, disk_full: DiskFullEpisodes) -> None:
        self._pool = pool
        self._disk_full = disk_full
        self._pending: list[_Queued] = []
        self._flushing: asyncio.Task[None] | None = None
        self.commits = 0  # batches committed: for tests and benchmarks (a count, not a time)
        self.writes = 0  # writes committed
        self.retries = 0  # writes run again on their own, after a deadlock or a long wait
        self._alone: set[asyncio.Task[None]] = set()

    async def atomic(self, work: Callable[[SqlRunner], Awaitable[T]]) -> T:
        """`work` in a transaction of its own or as one write of a batch, all or nothing.
        `work` may await only the runner it is given, and may run more than once (if it
        loses a deadlock), so it does nothing but its statements."""
        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append(_Queued(work, answer))
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())
        return await answer

    async def close(self) -> None:
        while self._flushing is not None or self._alone:
            if self._flushing is not None:
                await asyncio.shield(self._flushing)
            if self._alone:
                await asyncio.gather(*self._alone, return_exceptions=True)

    async def _flush(self) -> None:
        # One batch at a time: a second one running its writes while the first commits
        # made smaller batches and more commits (2,500 req/s against 3,000, measured).
        try:
            await asyncio.sleep(0)  # let every request of this loop turn join the batch
            while self._pending:
                batch = self._pending[:MAX_WRITES]
                del self._pending[:MAX_WRITES]
                for item in await self._commit_batch(batch):
                    self._run_alone(item)
        except BaseException:  # cancelled (at shutdown): nobody may wait for ever
            stopped = StoreUnavailable("the store is closing")
            for item in self._pending:
                if not item.answer.done():
                    item.answer.set_exception(stopped)
            self._pending.clear()
            raise
        finally:
            self._flushing = None

    async def _commit_batch(self, batch: list[_Queued]) -> list[_Queued]:
        """Runs and commits `batch`, answers its callers; returns the writes to run again,
        on their own."""
        done: list[tuple[_Queued, Any, bool]] = []
        again: list[_Queued] = []
        try:
            async with translated_errors(self._disk_full), pooled(self._pool) as conn:
                runner = _BatchRunner(conn, self._disk_full)
                await conn.execute(_BEGIN)
                try:
                    await self._run_writes(conn, runner, batch, done, again)
                    await conn.execute(_TO_SEAL)
                    await seal(runner, runner.batch, runner.insert_rows)
                    await conn.execute("COMMIT")
                except BaseException:
                    await _rolled_back(conn)
                    raise
        except Contended as exc:  # the batch's end lost a deadlock: all of it again
            log.info("a write batch was rolled back (%s); its writes run again", exc)
            return [item for item in batch if not item.answer.done()]
        except BaseException as exc:
            failure = exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(str(exc))
            for item in batch:
                if not item.answer.done():
                    item.answer.set_exception(failure)
            if not isinstance(exc, Exception):
                raise
            return []
        self.commits += 1
        if self._disk_full.active and any(ok for _, _, ok in done):
            self._disk_full.wrote()
        for item, outcome, ok in done:
            if item.answer.done():  # its caller went away (cancelled)
                continue
            if ok:
                self.writes += 1
                item.answer.set_result(outcome)
            else:
                item.answer.set_exception(outcome)
        return again

    async def _run_writes(
        self,
        conn: asyncpg.Connection,
        runner: _BatchRunner,
        batch: Sequence[_Queued],
        done: list[tuple[_Queued, Any, bool]],
        again: list[_Queued],
    ) -> None:
        """Each write under the savepoint `_BEGIN` or the last `_NEXT` / `_UNDO` opened."""
        between = ""
        for item in batch:
            if item.answer.done():  # cancelled while queued: not run
                continue
            if between:
                await conn.execute(between)
            mark = runner.batch.mark()
            try:
                result = await item.work(runner)
            except Contended:
                runner.batch.undo_to(mark)
                again.append(item)
                between = _UNDO
            except Exception as exc:
                runner.batch.undo_to(mark)
                done.append((item, exc, False))
                between = _UNDO
            else:
                done.append((item, result, True))
                between = _NEXT
        if between == _UNDO:  # the last write's failure, undone before the seal
            await conn.execute(_UNDO)

    def _run_alone(self, item: _Queued) -> None:
        """A write that waited too long or lost a deadlock in a batch: in a transaction of
        its own, beside the batches, so it holds none of them up."""
        self.retries += 1
        task = asyncio.get_running_loop().create_task(self._alone_until_done(item))
        self._alone.add(task)
        task.add_done_callback(self._alone.discard)

    async def _alone_until_done(self, item: _Queued) -> None:
        for _ in range(MAX_TRIES):
            if item.answer.done():
                return
            try:
                async with (
                    translated_errors(self._disk_full),
                    pooled(self._pool) as conn,
                    conn.transaction(),
                ):
                    result = await item.work(PostgresRunner(conn, self._disk_full))
            except Contended:
                continue  # lost a deadlock: PostgreSQL rolled it back
            except BaseException as exc:
                if not item.answer.done():
                    item.answer.set_exception(
                        exc if isinstance(exc, Exception) else StoreUnavailable(str(exc))
                    )
                if not isinstance(exc, Exception):
                    raise
                return
            if self._disk_full.active:
                self._disk_full.wrote()
            self.writes += 1
            if not item.answer.done():
                item.answer.set_result(result)
            return
        if not item.answer.done():
            item.answer.set_exception(
                StoreUnavailable(f"a write lost {MAX_TRIES} deadlocks in a row")
            )


async def _rolled_back(conn: asyncpg.Connection) -> None:
    """ROLLBACK after a failure, which stays the one raised: if the ROLLBACK fails too (the
    connection broke), the pool drops the connection, and the transaction with it."""
    try:
        if conn.is_in_transaction():
            await conn.execute("ROLLBACK")
    except Exception as exc:
        log.info("a write batch's ROLLBACK failed: %s", exc)
