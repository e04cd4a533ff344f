"""Disk full at the store layer (issue 12 item 10): a real SQLITE_FULL, made by capping the
database at its current size (`PRAGMA max_page_count`, SQLite's own "database or disk is
full"), is StorageFull, not a generic outage; its episode is logged once at the start and
once at the end, and `storage_full()` reports it meanwhile. The disk filled for real, on
both stores, is tests/reliability/test_disk_full.py."""

from __future__ import annotations

import errno
import logging
import sqlite3
from pathlib import Path

import pytest

from devreg.core.store import STORAGE_FULL_RETRY_AFTER, DuplicateValue, StorageFull
from devreg.storage import disk_full, migrate_store, open_store
from devreg.storage.disk_full import sqlite_disk_full
from devreg.storage.sqlite import SqliteDeviceStore
from tests.storage.conftest import device_for, stored_account
from tests.support.origins import TEST_ORIGIN

MAX_DEVICES = 10_000  # bound on the inserts that reach the cap; a few hundred do


def warnings_and_infos(caplog: pytest.LogCaptureFixture) -> tuple[int, int]:
    messages = [r.getMessage() for r in caplog.records if r.name == "devreg.storage"]
    return (
        sum(m.startswith("storage full: writes are refused") for m in messages),
        sum(m.startswith("storage no longer full") for m in messages),
    )


async def test_sqlite_full_is_storage_full_logged_once_per_episode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="devreg.storage")
    await migrate_store(None, tmp_path)
    store = await open_store(None, tmp_path)
    assert isinstance(store, SqliteDeviceStore)
    try:
        account = await stored_account(store)
        kept = device_for(account, reference_id="kept")
        await store.insert_device(kept, {}, TEST_ORIGIN)
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages}")
        assert not store.storage_full()

        for n in range(MAX_DEVICES):  # until the capped file has no page left
            try:
                await store.insert_device(
                    device_for(account, reference_id=f"r{n}"), {}, TEST_ORIGIN
                )
            except StorageFull as exc:
                assert exc.retry_after == STORAGE_FULL_RETRY_AFTER
                assert "database or disk is full" in exc.detail
                break
        else:
            raise AssertionError("the capped database never filled")
        # More refusals, single statements and transactions alike: the same episode.
        for n in range(5):
            with pytest.raises(StorageFull):
                await store.insert_device(
                    device_for(account, reference_id=f"more{n}"), {}, TEST_ORIGIN
                )
            with pytest.raises(StorageFull):
                await store.insert_device(device_for(account), {}, TEST_ORIGIN)  # a transaction
        assert store.storage_full()
        assert warnings_and_infos(caplog) == (1, 0)
        # Reads go on; a refused duplicate (nothing stored) does not end the episode.
        assert await store.get_device(account.id, True, kept.id) is not None
        monkeypatch.setattr(disk_full, "QUIET", 0.0)
        with pytest.raises(DuplicateValue):
            await store.insert_device(device_for(account, reference_id="kept"), {}, TEST_ORIGIN)
        assert store.storage_full() and warnings_and_infos(caplog) == (1, 0)

        # Room again: the next stored write ends the episode, once.
        store._conn.execute("PRAGMA max_page_count = 1073741823")
        await store.insert_device(device_for(account, reference_id="after"), {}, TEST_ORIGIN)
        await store.insert_device(device_for(account, reference_id="after2"), {}, TEST_ORIGIN)
        assert not store.storage_full()
        assert warnings_and_infos(caplog) == (1, 1)
    finally:
        await store.close()


def test_what_counts_as_disk_full_on_sqlite(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "capped.sqlite3")
    conn.execute("CREATE TABLE t (x BLOB)")
    conn.execute("PRAGMA max_page_count = 2")
    with pytest.raises(sqlite3.OperationalError) as full:
        conn.execute("INSERT INTO t VALUES (zeroblob(100000))")
    assert sqlite_disk_full(full.value)
    with pytest.raises(sqlite3.OperationalError) as other:
        conn.execute("SELECT * FROM no_such_table")
    assert not sqlite_disk_full(other.value)
    conn.close()
    # What the operating system says when a write or an fsync finds no room.
    assert sqlite_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert sqlite_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not sqlite_disk_full(OSError(errno.EIO, "Input/output error"))
