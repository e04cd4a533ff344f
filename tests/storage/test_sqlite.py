"""The SQLite store's file: private from the first byte, and shared with other processes."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path

from devreg.storage import migrate_store
from devreg.storage.sqlite import SqliteDeviceStore
from tests.storage.conftest import device_for, stored_account
from tests.support.origins import TEST_ORIGIN

REPO = Path(__file__).resolve().parents[2]


def database_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("devreg.sqlite3*"))


async def test_database_and_wal_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        await migrate_store(None, tmp_path)
        store = SqliteDeviceStore(tmp_path / "devreg.sqlite3")
        await stored_account(store)  # a commit: the -wal and -shm files exist now
        files = database_files(tmp_path)
        assert [f.name for f in files] == [
            "devreg.sqlite3",
            "devreg.sqlite3-shm",
            "devreg.sqlite3-wal",
        ]
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        await store.close()
    finally:
        os.umask(previous)


WRITER = """
import asyncio, sys
from pathlib import Path
from devreg.storage.sqlite import SqliteDeviceStore
from tests.storage.conftest import device_for, stored_account

async def main() -> None:
    store = SqliteDeviceStore(Path(sys.argv[1]))
    account = await stored_account(store, sys.argv[2])
    await store.close()
    print(account.id.hex())

asyncio.run(main())
"""


async def test_an_open_store_sees_what_other_processes_commit(tmp_path: Path) -> None:
    """Two connections per store (writer and reader) in one process: opening the second
    must not cost the first its WAL locks, or it would stop seeing others' commits."""
    await migrate_store(None, tmp_path)
    path = tmp_path / "devreg.sqlite3"
    store = SqliteDeviceStore(path)
    mine = await stored_account(store)
    await store.insert_device(device_for(mine), {}, TEST_ORIGIN)
    for n in range(3):
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", WRITER, str(path), f"other {n}"],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        account_id = bytes.fromhex(done.stdout.strip())
        profile = await store.default_profile(account_id)
        assert profile is not None and profile.account_id == account_id, n
    await store.close()
