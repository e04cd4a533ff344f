"""Group commit for SQLite: writes that arrive together share one COMMIT, and so one fsync,
instead of paying one each; and the fsync never stalls the event loop.

Writes (single statements and whole transactions) queue up; one flush at a time takes the
queue as a batch. It opens the batch's transaction (BEGIN IMMEDIATE, which may wait for
another process's write lock, in the commit thread), runs each queued statement under its
own SAVEPOINT (one that fails, a duplicate say, fails alone), gives each queued
transaction its turn on the writer under its own SAVEPOINT, then COMMITs in the commit
thread (`synchronous=FULL`: on disk) and only then answers every caller. While the
commit thread waits for the disk, the event loop goes on serving reads and queueing the
next batch, so the batches grow with the load.

Reads outside transactions use a second connection: WAL gives it the last committed
state, never the half-built batch, so nothing is shown before it is durable.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from devreg.core.store import StoreUnavailable
from devreg.storage.base import Params, SqlRunner
from devreg.storage.batch import Batch, seal
from devreg.storage.disk_full import DiskFullEpisodes, sqlite_disk_full

Rows = list[Sequence[Any]]
T = TypeVar("T")
WRITES = ("INSERT", "UPDATE", "DELETE")


@dataclass(slots=True)
class _Statement:
    statement: str
    params: Params
    answer: asyncio.Future[Rows]


@dataclass(slots=True)
class _Work:
    """A transaction that reads and writes with no await between (only the writer's own
    statements, which never suspend): run inline in the batch under its own savepoint,
    like a statement, with no turn on the writer to wait for."""

    work: Callable[[SqlRunner], Awaitable[Any]]
    answer: asyncio.Future[Any]


@dataclass(slots=True)
class _Transaction:
    turn: asyncio.Future[None]  # set by the flush: the writer is this transaction's now
    finished: asyncio.Future[None]  # set by the transaction: its savepoint is closed
    committed: asyncio.Future[None] = field(init=False)
    # Set when SQLite itself rolled the whole batch back under this transaction.
    batch_lost: BaseException | None = None

    def __post_init__(self) -> None:
        self.committed = self.turn.get_loop().create_future()


def _finish(queued: _Transaction) -> None:
    """The transaction's savepoint is closed: the flush may go on (unless it was cancelled
    while it waited, which cancelled this future too)."""
    if not queued.finished.done():
        queued.finished.set_result(None)


class _InTransaction:
    """A queued transaction's statements, run inline on the writer during its turn.

    `batch` is what the writes of one batch share until its COMMIT (storage/batch.py); a
    write that fails leaves it as it found it."""

    __slots__ = ("_execute", "_writer", "batch")

    def __init__(
        self,
        writer: sqlite3.Connection,
        execute: Callable[[str, Params], sqlite3.Cursor],
        batch: Batch | None,
    ) -> None:
        self._writer = writer
        self._execute = execute
        self.batch = batch

    async def rows(self, statement: str, params: Params = ()) -> Rows:
        # Only if the batch was torn down under a running transaction (at shutdown): its
        # statements must not go on in autocommit mode, each durable on its own.
        if not self._writer.in_transaction:
            raise StoreUnavailable("the batch ended before this transaction did")
        return self._execute(statement, params).fetchall()

    async def run(self, statement: str, params: Params = ()) -> None:
        await self.rows(statement, params)


class GroupCommitRunner:
    """Single-statement writes and transactions, batched into shared durable commits;
    reads run at once on the reader."""

    def __init__(
        self,
        writer: sqlite3.Connection,
        execute_write: Callable[[str, Params], sqlite3.Cursor],
        execute_read: Callable[[str, Params], sqlite3.Cursor],
        disk_full: DiskFullEpisodes,
    ) -> None:
        self._writer = writer
        self._disk_full = disk_full  # told of every commit that stored a change
        self._execute = execute_write  # runs one statement, translating driver errors
        self._read = execute_read
        self._in_batch = _InTransaction(writer, execute_write, Batch())
        # A queued transaction (an import, say) writes as it goes: its log entries, which
        # may be many, are not kept for the batch's end.
        self._in_transaction = _InTransaction(writer, execute_write, None)
        self._commit_thread = ThreadPoolExecutor(1, thread_name_prefix="devreg-commit")
        self._pending: list[_Statement | _Work | _Transaction] = []
        self._flushing: asyncio.Task[None] | None = None
        self.commits = 0  # batches committed: for tests and benchmarks (a count, not a time)
        self.writes = 0  # single-statement writes and transactions committed

    async def rows(self, statement: str, params: Params = ()) -> Rows:
        if not statement.lstrip()[:6].upper().startswith(WRITES):
            return self._read(statement, params).fetchall()
        answer: asyncio.Future[Rows] = asyncio.get_running_loop().create_future()
        self._enqueue(_Statement(statement, params, answer))
        return await answer

    async def run(self, statement: str, params: Params = ()) -> None:
        await self.rows(statement, params)

    async def atomic(self, work: Callable[[SqlRunner], Awaitable[T]]) -> T:
        """`work` on the writer, all or nothing, as one item of the batch. `work` may
        await only the runner it is given (which never suspends)."""
        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._enqueue(_Work(work, answer))
        return await answer

    def transaction(self) -> AbstractAsyncContextManager[SqlRunner]:
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[SqlRunner]:
        loop = asyncio.get_running_loop()
        queued = _Transaction(loop.create_future(), loop.create_future())
        self._enqueue(queued)
        try:
            await queued.turn
        except asyncio.CancelledError:
            if queued.turn.done() and not queued.turn.cancelled():
                _finish(queued)  # given the turn as we were cancelled
            raise
        try:  # the batch's writes before this one come first in the log
            await seal(self._in_batch, self._shared(), self._insert_rows)
        except BaseException as exc:  # the batch fails as a whole
            translated = isinstance(exc, StoreUnavailable) or not isinstance(exc, Exception)
            queued.batch_lost = exc if translated else self._failure(exc)
            queued.committed.cancel()
            _finish(queued)
            if translated:
                raise
            raise queued.batch_lost from exc
        self._writer.execute("SAVEPOINT one_transaction")
        try:
            yield self._in_transaction
        except BaseException as exc:
            if self._writer.in_transaction:
                self._writer.execute("ROLLBACK TO one_transaction")
                self._writer.execute("RELEASE one_transaction")
            else:  # SQLite rolled the whole batch back itself (after SQLITE_FULL, say)
                queued.batch_lost = exc
            queued.committed.cancel()  # not committed, and nobody waits for it
            _finish(queued)
            raise
        if not self._writer.in_transaction:  # rolled back under a caller that went on
            queued.batch_lost = StoreUnavailable("the transaction was rolled back")
            queued.committed.cancel()
            _finish(queued)
            raise queued.batch_lost
        self._writer.execute("RELEASE one_transaction")
        _finish(queued)
        await queued.committed  # durable before the caller goes on

    async def close(self) -> None:
        while self._flushing is not None:
            await asyncio.shield(self._flushing)
        self._commit_thread.shutdown(wait=True)

    def _enqueue(self, item: _Statement | _Work | _Transaction) -> None:
        self._pending.append(item)
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # let every request of this loop turn join the batch
            while self._pending:
                batch, self._pending = self._pending, []
                await self._commit_batch(batch)
        except BaseException:  # cancelled (at shutdown): nobody may wait for ever
            stopped = StoreUnavailable("the store is closing")
            for item in self._pending:
                waiter = item.turn if isinstance(item, _Transaction) else item.answer
                if not waiter.done():
                    waiter.set_exception(stopped)
            self._pending = []
            raise
        finally:
            self._flushing = None

    async def _in_commit_thread(self, statement: str) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._commit_thread, self._execute, statement, ())

    async def _commit_batch(self, batch: list[_Statement | _Work | _Transaction]) -> None:
        outcomes: list[tuple[_Statement | _Work, Any, bool]] = []
        joined: list[_Transaction] = []
        # During a disk-full episode only a commit that stored a change ends it (a batch of
        # refused duplicates commits without needing a byte).
        changes = self._writer.total_changes if self._disk_full.active else None
        self._in_batch.batch = Batch()
        try:
            await self._in_commit_thread("BEGIN IMMEDIATE")
            for item in batch:
                if isinstance(item, _Statement):
                    outcomes.append(self._run_statement(item))
                elif isinstance(item, _Work):
                    outcomes.append(self._run_work(item))
                elif not item.turn.cancelled():
                    item.turn.set_result(None)
                    await item.finished
                    joined.append(item)
                    if item.batch_lost is not None:  # nothing may run on in autocommit mode
                        raise item.batch_lost
            await seal(self._in_batch, self._shared(), self._insert_rows)  # fails the batch
            await self._in_commit_thread("COMMIT")
        except BaseException as exc:
            if self._writer.in_transaction:
                self._writer.execute("ROLLBACK")
            failure = self._failure(exc)
            for item in batch:
                waiter = item.committed if isinstance(item, _Transaction) else item.answer
                if not waiter.done():
                    waiter.set_exception(failure)
                if isinstance(item, _Transaction) and not item.turn.done():
                    item.turn.set_exception(failure)
            if not isinstance(exc, Exception):
                raise
            return
        self.commits += 1
        if changes is not None and self._writer.total_changes > changes:
            self._disk_full.wrote()
        for queued in joined:
            if not queued.committed.done():
                self.writes += 1
                queued.committed.set_result(None)
        for statement, outcome, ok in outcomes:
            if statement.answer.done():  # its caller went away (cancelled)
                continue
            if ok:
                self.writes += 1
                statement.answer.set_result(outcome)
            else:
                statement.answer.set_exception(outcome)

    def _shared(self) -> Batch:
        """What the batch's writes share (storage/batch.py)."""
        assert self._in_batch.batch is not None
        return self._in_batch.batch

    async def _insert_rows(self, statement: str, rows: list[Params]) -> None:
        try:
            self._writer.executemany(statement, rows)
        except sqlite3.Error as exc:  # as `execute` translates them (disk full: 507)
            raise self._failure(exc) from exc

    def _failure(self, exc: BaseException) -> StoreUnavailable:
        """What the batch's callers are told when it failed as a whole."""
        if isinstance(exc, StoreUnavailable):
            return exc
        if sqlite_disk_full(exc):  # from a statement not run through `execute`, or the OS
            return self._disk_full.refused(str(exc))
        return StoreUnavailable(str(exc))

    def _run_work(self, item: _Work) -> tuple[_Work, Any, bool]:
        self._writer.execute("SAVEPOINT one_write")
        mark = self._shared().mark()
        try:
            running = item.work(self._in_batch)
            try:
                running.send(None)  # type: ignore[attr-defined]
            except StopIteration as done:
                result = done.value
            else:
                running.close()  # type: ignore[attr-defined]
                raise RuntimeError("an atomic write awaited something else than its runner")
        except Exception as exc:
            if not self._writer.in_transaction:
                raise  # the whole batch was rolled back, as in _run_statement
            self._shared().undo_to(mark)
            self._writer.execute("ROLLBACK TO one_write")
            self._writer.execute("RELEASE one_write")
            return item, exc, False
        self._writer.execute("RELEASE one_write")
        return item, result, True

    def _run_statement(self, item: _Statement) -> tuple[_Statement, Any, bool]:
        self._writer.execute("SAVEPOINT one_write")
        try:
            rows = self._execute(item.statement, item.params).fetchall()
        except Exception as exc:  # this write fails alone ...
            if not self._writer.in_transaction:
                # ... unless SQLite rolled the whole batch back itself, as it may after
                # SQLITE_FULL, IOERR, NOMEM or BUSY: then every write of the batch fails.
                raise
            self._writer.execute("ROLLBACK TO one_write")
            self._writer.execute("RELEASE one_write")
            return item, exc, False
        self._writer.execute("RELEASE one_write")
        return item, rows, True
