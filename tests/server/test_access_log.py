"""The access log's count of 429s per address (server/access_log.py): the burst's first one
gets its line, the rest are summed up once per interval, a quiet interval ends the burst,
shutdown writes what is counted, and past MAX_ADDRESSES the further ones are summed up
together. End to end against a real server: tests/security/test_refusal_log.py."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from devreg.server import access_log
from devreg.server.access_log import OTHERS, RefusalCounter

INTERVAL = 0.05


def summaries(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    found = []
    for record in caplog.records:
        if match := re.fullmatch(
            r"(\d+) more 429s from (\S+) in the last .* s", record.getMessage()
        ):
            found.append((int(match[1]), match[2]))
    return found


async def test_a_burst_is_its_first_line_then_one_count_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="devreg.access")
    counter = RefusalCounter(INTERVAL)
    assert not counter.counted("192.0.2.1")  # the first: logged as usual
    assert all(counter.counted("192.0.2.1") for _ in range(7))
    assert not counter.counted("192.0.2.2")  # another address: a burst of its own
    await asyncio.sleep(INTERVAL * 1.5)
    assert summaries(caplog) == [(7, "192.0.2.1")]  # 192.0.2.2 had no more: nothing to say
    assert counter.counted("192.0.2.1")
    await asyncio.sleep(INTERVAL * 3)  # one count, then a quiet interval ends the burst
    assert summaries(caplog) == [(7, "192.0.2.1"), (1, "192.0.2.1")]
    assert not counter.counted("192.0.2.1")  # a new burst: logged as usual again
    assert counter.counted("192.0.2.1") and counter.counted("192.0.2.1")
    counter.close()  # shutdown: what is counted is written, the timers are gone
    assert summaries(caplog)[-1] == (2, "192.0.2.1")


async def test_past_the_address_cap_refusals_are_counted_together(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="devreg.access")
    monkeypatch.setattr(access_log, "MAX_ADDRESSES", 2)
    counter = RefusalCounter(60)
    assert not counter.counted("192.0.2.1")
    assert not counter.counted("192.0.2.2")
    assert not counter.counted("192.0.2.3")  # the first of the "others" burst
    assert counter.counted("192.0.2.4") and counter.counted("192.0.2.3")
    assert counter.counted("192.0.2.1")
    counter.close()
    assert sorted(summaries(caplog)) == [(1, "192.0.2.1"), (2, OTHERS)]
