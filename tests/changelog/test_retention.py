"""Retention: the background pruner removes what is older than the retention, in small
batches, keeps the newest entry and the chain verifiable; the setting is checked."""

from __future__ import annotations

import asyncio

import pytest

from devreg.changelog.retention import DAY_US, keep_pruning
from devreg.changelog.service import ChangeLogService
from devreg.core.clock import now_us
from devreg.server.config import load_config
from devreg.storage.base import SqlDeviceStore
from tests.changelog.test_chain import populate


async def test_the_pruner_keeps_what_is_young_enough(own_store: SqlDeviceStore) -> None:
    await populate(own_store, updates=20)
    log = ChangeLogService(own_store, own_store)
    head = await own_store.change_head()
    # 30 days on, with a retention of 10: everything is old; the newest entry stays
    later = now_us() + 30 * DAY_US
    task = asyncio.create_task(keep_pruning(log, 10, every=0.01, clock=lambda: later))
    try:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if (await own_store.change_head()).pruned_seq == head.seq - 1:
                break
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    kept = [entry async for entry in log.export()]
    assert [entry.seq for entry in kept] == [head.seq]
    assert (await log.verify()).broken is None
    # a retention longer than the log's age prunes nothing
    await populate(own_store, updates=2)
    assert await log.prune(now_us() - 10 * DAY_US) == 0


def test_the_retention_setting_is_checked() -> None:
    assert load_config({}, environ={}).audit_retention_days == 400
    assert load_config({}, environ={"DEVREG_AUDIT_RETENTION_DAYS": "0"}).audit_retention_days == 0
    for bad in ("-1", "40000", "soon"):
        with pytest.raises(ValueError, match="retention"):
            load_config({}, environ={"DEVREG_AUDIT_RETENTION_DAYS": bad})


async def test_two_processes_pruning_at_once_never_move_the_mark_back(
    own_store: SqlDeviceStore, own_backend: str | None, tmp_path: object
) -> None:
    """Every serving process prunes: two at once, with different cutoffs, in small
    batches, take turns at the head; the pruned mark only moves forward and the chain
    verifies from the oldest kept entry."""
    from devreg.storage import open_store

    await populate(own_store, updates=60)
    entries = [entry async for entry in ChangeLogService(own_store, own_store).export()]
    other = await open_store(own_backend, tmp_path)  # type: ignore[arg-type]
    try:
        early, late = entries[20].time, entries[-5].time
        marks: list[int] = []

        async def watch() -> None:
            for _ in range(200):
                marks.append((await own_store.change_head()).pruned_seq)
                await asyncio.sleep(0)

        await asyncio.gather(
            ChangeLogService(own_store, own_store).prune(late, batch=3),
            ChangeLogService(other, other).prune(early, batch=2),  # type: ignore[arg-type]
            watch(),
        )
    finally:
        await other.close()
    assert marks == sorted(marks)  # never back
    head = await own_store.change_head()
    kept = [entry async for entry in ChangeLogService(own_store, own_store).export()]
    assert kept[0].seq == head.pruned_seq + 1 and kept[0].time >= late
    assert (await ChangeLogService(own_store, own_store).verify()).broken is None


async def test_verify_while_a_pruner_runs_finds_no_break(
    own_store: SqlDeviceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prune between two of verify's batches removes entries it has not read yet: not
    a break (the walk starts again from the new oldest entry)."""
    from devreg.changelog import service

    monkeypatch.setattr(service, "EXPORT_BATCH", 5)  # the prune falls between two batches
    await populate(own_store, updates=30)
    log = ChangeLogService(own_store, own_store)
    entries = [entry async for entry in log.export()]
    real_export = log.export
    pruned = False

    async def export_pruning_midway(after_seq: int = 0):  # type: ignore[no-untyped-def]
        nonlocal pruned
        async for entry in real_export(after_seq=after_seq):
            yield entry
            if not pruned:  # after the walk's first entry, a pruner of another process
                pruned = True
                await log.prune(entries[10].time)

    log.export = export_pruning_midway  # type: ignore[method-assign]
    found = await log.verify()
    assert pruned and found.broken is None, found.broken
    assert found.oldest_seq == (await own_store.change_head()).pruned_seq + 1 > 6
