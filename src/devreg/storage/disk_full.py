"""Disk full: how SQLite says it (PostgreSQL's SQLSTATE 53100 is asyncpg's DiskFullError,
in postgres.py), and the episodes it makes.

A write the database has no room for is refused as StorageFull (507 with a long
Retry-After, in the caller's dialect) instead of a generic outage. An episode starts with
the first such refusal and ends with the first write stored after QUIET seconds without
one: one warning at its start and one line at its end, however many requests are refused
in between. The quiet time matters on PostgreSQL, where a small row may still fit in a
page that has room while larger writes are refused: without it, alternating writes would
start and end an episode each. `/healthz` reports the episode while its last refusal is
recent (STORAGE_FULL_RETRY_AFTER): a load balancer that took this process out of service,
so that no write comes to end the episode, lets it back in when that has passed.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading
import time

from devreg.core.store import STORAGE_FULL_RETRY_AFTER, StorageFull

log = logging.getLogger("devreg.storage")

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
QUIET = 5.0  # seconds without a refusal before a stored write ends an episode


def sqlite_disk_full(exc: BaseException) -> bool:
    """SQLITE_FULL ("database or disk is full", also a temporary file that found no room),
    or the operating system's ENOSPC / EDQUOT (the commit thread's fsync, say)."""
    if isinstance(exc, sqlite3.Error):
        code: int | None = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF == sqlite3.SQLITE_FULL
        return "database or disk is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno in _NO_SPACE


class DiskFullEpisodes:
    """One store's disk-full state, in one process. `refused` and `wrote` may be called
    from the commit thread as well as the event loop."""

    __slots__ = ("_last", "_lock", "_refused", "_since")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: float | None = None  # when the episode began; None: no episode
        self._last = 0.0  # the last refusal
        self._refused = 0  # writes refused in this episode

    @property
    def active(self) -> bool:
        """Read on every write while there is no episode: one attribute, no lock."""
        return self._since is not None

    def refused(self, detail: str) -> StorageFull:
        """Note a write refused for lack of space; the exception to raise for it."""
        now = time.monotonic()
        with self._lock:
            self._last = now
            self._refused += 1
            starting = self._since is None
            if starting:
                self._since = now
        if starting:
            log.warning(
                "storage full: writes are refused (507, Retry-After %d) until space is freed;"
                " reads go on: %s",
                STORAGE_FULL_RETRY_AFTER,
                " ".join(detail.split())[:300],  # PostgreSQL's HINT comes on a line of its own
            )
        return StorageFull(detail)

    def wrote(self) -> None:
        """A write was stored: the episode, if any, is over once none was refused for QUIET
        seconds."""
        if self._since is None:
            return
        now = time.monotonic()
        with self._lock:
            since, refused = self._since, self._refused
            if since is None or now - self._last < QUIET:
                return
            self._since, self._refused = None, 0
        log.info(
            "storage no longer full: writes succeed again (%d refused in %.1f s)",
            refused,
            now - since,
        )

    def full_now(self) -> bool:
        return self._since is not None and time.monotonic() - self._last < STORAGE_FULL_RETRY_AFTER
