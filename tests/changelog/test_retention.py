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
