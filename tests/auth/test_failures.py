"""Failed credential attempts, counted per client address before any lookup."""

from __future__ import annotations

import pytest

from devreg.auth.failures import failures_bucket, guarded
from devreg.auth.rate_limit import MemoryRateLimiter
from devreg.core.errors import RateLimited, Unauthenticated

HERE = {"client": ("192.0.2.7", 5555)}
THERE = {"client": ("198.51.100.9", 5555)}


async def test_failures_count_per_address_and_successes_cost_nothing() -> None:
    limiter = MemoryRateLimiter(rate=0.001, burst=3)
    calls: list[str] = []

    async def good() -> str:
        calls.append("good")
        return "key"

    async def bad() -> str:
        calls.append("bad")
        raise Unauthenticated("Invalid API key")

    for _ in range(10):
        assert await guarded(limiter, HERE, good) == "key"
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await guarded(limiter, HERE, bad)
    before = len(calls)
    with pytest.raises(RateLimited):
        await guarded(limiter, HERE, good)  # over the limit: refused, not even called
    assert len(calls) == before
    assert await guarded(limiter, THERE, good) == "key"  # another address is not slowed


def test_the_bucket_names_the_address() -> None:
    assert failures_bucket(HERE) == "credential-failures:192.0.2.7"
    assert failures_bucket({}) == "credential-failures:-"
