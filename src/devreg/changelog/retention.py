"""Retention: entries older than `--audit-retention-days` are pruned in the background,
a small batch per transaction (changelog/service.py:PRUNE_BATCH), so the write lock is
never held long enough to delay a request; the chain stays verifiable from the oldest kept
entry (the head records where pruning stopped)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from devreg.changelog.service import DAY_US, ChangeLogService
from devreg.core.clock import now_us
from devreg.core.errors import Unavailable

PRUNE_EVERY_SECONDS = 600.0
log = logging.getLogger("devreg.changelog")


async def prune_once(log_service: ChangeLogService, days: int, now: int) -> int:
    return await log_service.prune(now - days * DAY_US)


async def keep_pruning(
    log_service: ChangeLogService,
    days: int,
    *,
    every: float = PRUNE_EVERY_SECONDS,
    clock: Callable[[], int] = now_us,
) -> None:
    """Until cancelled: prune, then wait `every` seconds. A store that is down is tried
    again next time."""
    while True:
        try:
            pruned = await prune_once(log_service, days, clock())
            if pruned:
                log.info("change log: pruned %d entries older than %d days", pruned, days)
        except Unavailable as exc:
            log.warning("change log: pruning skipped, the store is unavailable: %s", exc)
        await asyncio.sleep(every)
