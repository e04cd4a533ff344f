"""The change log's pages are bounded: a history or account-log page of large records
stays under dialect D's list bound (1 MiB) and paging on reaches every entry; a page of
the account's log examines at most MAX_LOG_SCAN of the account's entries whatever its
filters match; the deep history page walks the covering index only. The HTTP ones run on
the app in-process (`app_client`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devreg.changelog import service
from devreg.changelog.service import ChangeLogService
from devreg.changelog.store import EntryFilter
from devreg.dialect_d.pages import MAX_LIST_BYTES
from devreg.storage import migrate_store, open_store, sql
from devreg.storage.base import SqlDeviceStore
from tests.changelog.test_chain import populate
from tests.support.databases import fresh_database
from tests.support.inprocess import AppClient
from tests.support.origins import api_caller

FIELDS = 100  # a profile's most, each value of the most characters (1,024)


async def big_device(app: AppClient, updates: int) -> tuple[str, list[str]]:
    """A device of ~100 kB records, updated `updates` times: its history's entries are
    ~200 kB each, `before` and `after`."""
    live = app.d()
    made = await live.post(
        "/device-profile",
        json={"name": "Big", "fields": [{"name": f"f{n}", "mandatory": False}
                                        for n in range(FIELDS)]},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    profile = made.json()
    ids = [field["id"] for field in profile["fields"]]
    device = await live.post(
        "/device",
        json={
            "division_id": profile["division"]["id"], "device_identifier": "big-1",
            "device_profile_id": profile["id"],
            "fields": [{"id": i, "value": "a" * 1024} for i in ids],
        },
    )  # fmt: skip
    assert device.status_code == 201, device.status_code
    for n in range(updates):
        value = chr(ord("b") + n) * 1024
        put = await live.put(
            f"/device/{device.json()['id']}", json={"fields": [{"id": i, "value": value}
                                                               for i in ids]},
        )  # fmt: skip
        assert put.status_code in (200, 201), put.status_code
    return device.json()["id"], ids


async def test_a_history_page_of_big_records_is_bounded_and_pages_on(
    app_client: AppClient,
) -> None:
    device_id, _ = await big_device(app_client, updates=9)  # 10 entries of ~200 kB
    seen: list[int] = []
    offset, pages = 0, 0
    while True:
        pages += 1
        answer = await app_client.d().get(f"/device/{device_id}/history",
                                          params={"limit": 1000, "offset": offset})  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert len(answer.content) <= MAX_LIST_BYTES
        body = answer.json()
        assert body["total"] == 10 and body["offset"] == offset
        assert body["limit"] == len(body["records"]) or offset + body["limit"] >= 10
        seen += [record["seq"] for record in body["records"]]
        if offset + len(body["records"]) >= body["total"]:
            break
        assert 0 < body["limit"] < 1000  # the page was shrunk to what fits
        offset += body["limit"]
    assert len(seen) == len(set(seen)) == 10 and seen == sorted(seen, reverse=True)
    assert pages > 2  # ~2 MB of records, 1 MiB a page at most


async def test_an_account_log_page_of_big_records_is_bounded_and_pages_on(
    app_client: AppClient,
) -> None:
    device_id, _ = await big_device(app_client, updates=9)
    live = app_client.d()
    everything: list[dict[str, Any]] = []
    after_seq, pages = 0, 0
    while True:
        answer = await live.get("/audit-log", params={"after_seq": after_seq, "limit": 1000})
        assert answer.status_code == 200, answer.text
        assert len(answer.content) <= MAX_LIST_BYTES
        body = answer.json()
        pages += 1
        assert body["after_seq"] == after_seq and body["limit"] >= len(body["records"])
        everything += body["records"]
        if body["next_after_seq"] is None:
            break
        assert body["next_after_seq"] == body["records"][-1]["seq"]
        after_seq = body["next_after_seq"]
    seqs = [e["seq"] for e in everything]
    assert seqs == sorted(set(seqs)) and pages > 1
    mine = [e for e in everything if e["object_id"] == device_id]
    assert [e["action"] for e in mine] == ["device.create"] + ["device.update"] * 9


@pytest.fixture
def log(own_store: SqlDeviceStore) -> ChangeLogService:
    return ChangeLogService(own_store, own_store)


async def test_a_filtered_account_log_page_examines_a_bounded_number_of_entries(
    own_store: SqlDeviceStore, log: ChangeLogService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filter that matches one entry of 35 (the device's create, seq 5, and the last
    update): each page examines at most MAX_LOG_SCAN (here 4) of the account's entries,
    ends there (short or empty) with next_after_seq at the last entry examined, and a
    client that pages on finds every match."""
    monkeypatch.setattr(service, "MAX_LOG_SCAN", 4)
    device = await populate(own_store, updates=30)  # seq 1..35, all of one account
    caller = api_caller(device.account_id)
    examined: list[tuple[int, int | None]] = []
    original = own_store.account_change_seqs

    async def spy(*args: Any, **kwargs: Any) -> list[int]:
        examined.append((kwargs["after_seq"], kwargs["through_seq"]))
        return await original(*args, **kwargs)

    monkeypatch.setattr(own_store, "account_change_seqs", spy)
    for where, expected in (
        (EntryFilter(action="device.create"), [5]),
        (EntryFilter(actor_kind="api_key"), []),
        (EntryFilter(time_from=0), list(range(1, 36))),
    ):
        examined.clear()
        found: list[int] = []
        after_seq = 0
        while True:
            seqs, next_after_seq = await log.account_page(
                caller, where, after_seq=after_seq, limit=1000
            )
            found += seqs
            if next_after_seq is None:
                break
            assert next_after_seq > after_seq
            after_seq = next_after_seq
        assert found == expected
        # every page's statement was bounded to a seq range of at most 4 of the account's
        # entries (the last one, with fewer than 4 left, by the end of the log)
        for low, high in examined[:-1]:
            assert high is not None
            rows = await count(own_store, device.account_id, low, high)
            assert rows == 4
        assert examined[-1][1] is None
        assert await count(own_store, device.account_id, examined[-1][0], 10**9) < 4
        assert len(examined) == 9  # 35 entries, 4 at a time


async def count(store: SqlDeviceStore, account_id: bytes, low: int, high: int) -> int:
    rows = await store.runner().rows(
        "SELECT COUNT(*) FROM change_log WHERE account_id = ? AND seq > ? AND seq <= ?",
        (account_id, low, high),
    )
    return int(rows[0][0])


async def test_a_page_limited_by_its_limit_goes_on_from_its_last_entry(
    own_store: SqlDeviceStore, log: ChangeLogService
) -> None:
    device = await populate(own_store, updates=6)  # seq 1..11
    caller = api_caller(device.account_id)
    seqs, following = await log.account_page(caller, EntryFilter(), after_seq=0, limit=3)
    assert (seqs, following) == ([1, 2, 3], 3)
    seqs, following = await log.account_page(caller, EntryFilter(), after_seq=9, limit=3)
    assert (seqs, following) == ([10, 11], None)


def test_the_history_page_walks_the_covering_index_only(tmp_path: Path) -> None:
    """SQLite's plan for the page's seqs: change_log_object as a covering index (no row
    read for the OFFSET), the rows then by their primary key."""
    conn = sqlite3.connect(tmp_path / "plan.sqlite3")
    migration = Path(sql.__file__).parent / "migrations" / "0007_change_log.sqlite.sql"
    conn.executescript(migration.read_text())
    plan = " ".join(
        str(row[-1])
        for row in conn.execute(
            "EXPLAIN QUERY PLAN " + sql.SELECT_OBJECT_HISTORY_SEQS, (b"x", 20, 9980)
        )
    )
    assert "USING COVERING INDEX change_log_object" in plan, plan
    plan = " ".join(
        str(row[-1])
        for row in conn.execute("EXPLAIN QUERY PLAN " + sql.SELECT_OBJECT_HISTORY, (b"x", 20, 9980))
    )
    assert "USING COVERING INDEX change_log_object" in plan, plan
    assert "INTEGER PRIMARY KEY" in plan, plan
    conn.close()


@pytest.fixture
def own_postgres(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database of this test's own (PostgreSQL only: no SQLite case)."""
    with fresh_database(postgres_url, "devreg_log_") as url:
        yield url


async def test_postgres_history_seqs_are_an_index_only_scan(
    own_postgres: str, tmp_path: Path
) -> None:
    """PostgreSQL's plan for the page's seqs: an index-only scan of change_log_object
    (a small table would be read whole: sequential scans are turned off to see the plan
    the big one gets). SQLite's plan is the test above."""
    import asyncpg

    await migrate_store(own_postgres, tmp_path)
    own_store = await open_store(own_postgres, tmp_path)
    try:
        device = await populate(own_store, updates=3)
    finally:
        await own_store.close()
    conn = await asyncpg.connect(own_postgres)
    try:
        await conn.execute("VACUUM ANALYZE change_log")
        await conn.execute("SET enable_seqscan = off")
        seqs = sql.SELECT_OBJECT_HISTORY_SEQS.replace("?", "$1", 1).replace("?", "$2", 1)
        seqs = seqs.replace("?", "$3", 1)
        plan = "\n".join(row[0] for row in await conn.fetch("EXPLAIN " + seqs, device.id, 20, 1))
        assert "Index Only Scan" in plan and "change_log_object" in plan, plan
    finally:
        await conn.close()
