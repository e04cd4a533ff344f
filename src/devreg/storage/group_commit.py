"""Group commit for SQLite: single-statement writes that arrive together share one COMMIT,
and so one fsync, instead of paying one each.

A write is queued and its caller waits; the first write queued schedules a flush for the
next turn of the event loop, so every request handled in this turn joins the batch. The
flush runs the batch inside one transaction, each statement under its own SAVEPOINT (a
statement that fails, a duplicate say, fails alone), commits (`synchronous=FULL`: on disk
before anyone is answered) and only then answers every caller. Nothing awaits inside the
flush, so no other statement can interleave with the batch on the shared connection.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from devreg.core.store import StoreUnavailable

Params = Sequence[Any]
WRITES = ("INSERT", "UPDATE", "DELETE")


class GroupCommitRunner:
    """A SqlRunner whose writes are batched; reads run at once (they see what is
    committed: no batch is ever open while other code runs)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        execute: Callable[[str, Params], sqlite3.Cursor],
    ) -> None:
        self._conn = conn
        self._execute = execute  # runs one statement, translating driver errors
        self._pending: list[tuple[str, Params, asyncio.Future[list[Sequence[Any]]]]] = []
        self.commits = 0  # batches committed: for tests and benchmarks (a count, not a time)
        self.writes = 0  # writes committed

    async def rows(self, statement: str, params: Params = ()) -> list[Sequence[Any]]:
        if not statement.lstrip()[:6].upper().startswith(WRITES):
            return self._execute(statement, params).fetchall()
        future: asyncio.Future[list[Sequence[Any]]] = asyncio.get_running_loop().create_future()
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append((statement, params, future))
        return await future

    async def run(self, statement: str, params: Params = ()) -> None:
        await self.rows(statement, params)

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        outcomes: list[tuple[asyncio.Future[list[Sequence[Any]]], Any, bool]] = []
        try:
            self._execute("BEGIN IMMEDIATE", ())
            for statement, params, future in batch:
                self._conn.execute("SAVEPOINT one_write")
                try:
                    rows = self._execute(statement, params).fetchall()
                except Exception as exc:  # this write fails alone
                    self._conn.execute("ROLLBACK TO one_write")
                    self._conn.execute("RELEASE one_write")
                    outcomes.append((future, exc, False))
                    continue
                self._conn.execute("RELEASE one_write")
                outcomes.append((future, rows, True))
            self._execute("COMMIT", ())
        except BaseException as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            failure = exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(str(exc))
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            if not isinstance(exc, Exception):
                raise
            return
        self.commits += 1
        for future, outcome, ok in outcomes:
            if future.done():  # its caller went away (cancelled): nothing to answer
                continue
            if ok:
                self.writes += 1
                future.set_result(outcome)
            else:
                future.set_exception(outcome)
