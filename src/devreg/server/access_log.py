"""Refused-for-rate 429s in the access log: counted per client address, not a line each.

A client hammering past its limit would otherwise write a line per refusal, thousands a
second. Per address, the first 429 of a burst is logged as usual; the ones after it are
counted, and every `interval` seconds (DEVREG_RATE_LIMIT_LOG_INTERVAL, default 10) one
line says how many came: `N more 429s from ADDR in the last S s`. An interval without a
429 from that address ends its burst, so the next one is logged as usual again; shutdown
writes what is still counted. Every 429 is accounted for, by its own line or a summary.
At most MAX_ADDRESSES addresses are counted at once; refusals from further ones are
counted together, as from "other-addresses".

Only 429s: every other answer is still one line each, and costs nothing more than the
comparison of its status with 429.
"""

from __future__ import annotations

import asyncio
import logging
import time

from devreg.web.connections import address_key

TOO_MANY_REQUESTS = 429
MAX_ADDRESSES = 10_000
OTHERS = "other-addresses"

log = logging.getLogger("devreg.access")


class _Burst:
    __slots__ = ("counted", "since", "timer")

    def __init__(self, since: float, timer: asyncio.TimerHandle) -> None:
        self.counted = 0  # 429s since `since` not logged on their own line
        self.since = since
        self.timer = timer


class RefusalCounter:
    """The 429 bursts of one process, by client address."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._bursts: dict[str, _Burst] = {}

    def counted(self, address: str) -> bool:
        """For a 429 to `address` (the client's, without its port): True if it was counted
        into that address's burst (write no line for it); False if it starts a burst (write
        its line as usual)."""
        address = address_key(address)  # an IPv6 client counts per /64, as connections do
        burst = self._bursts.get(address)
        if burst is None and len(self._bursts) >= MAX_ADDRESSES:
            address = OTHERS
            burst = self._bursts.get(address)
        if burst is not None:
            burst.counted += 1
            return True
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.interval, self._summarise, address)
        self._bursts[address] = _Burst(time.monotonic(), timer)
        return False

    def _summarise(self, address: str) -> None:
        burst = self._bursts[address]
        if not burst.counted:  # a quiet interval: the burst is over
            del self._bursts[address]
            return
        now = time.monotonic()
        _write(burst, address, now)
        burst.counted, burst.since = 0, now
        burst.timer = asyncio.get_running_loop().call_later(self.interval, self._summarise, address)

    def close(self) -> None:
        """Write every count not yet written (at shutdown)."""
        now = time.monotonic()
        for address, burst in self._bursts.items():
            burst.timer.cancel()
            if burst.counted:
                _write(burst, address, now)
        self._bursts.clear()


def _write(burst: _Burst, address: str, now: float) -> None:
    log.info("%d more 429s from %s in the last %.3g s", burst.counted, address, now - burst.since)
