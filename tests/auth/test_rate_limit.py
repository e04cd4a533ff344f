"""Per-credential token buckets: in memory, and shared across processes through Redis."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from devreg.auth.rate_limit import (
    MemoryRateLimiter,
    NoRateLimiter,
    RedisRateLimiter,
    make_rate_limiter,
    retry_after_seconds,
)
from devreg.core.errors import RateLimited, Unavailable

# A rate so slow that no token comes back during a test, whatever the machine's speed.
SLOW = 0.001


async def allowed_count(limiter: object, credential: str, attempts: int) -> int:
    allowed = 0
    for _ in range(attempts):
        try:
            await limiter.check(credential)  # type: ignore[attr-defined]
        except RateLimited as exc:
            assert exc.retry_after >= 1
            assert exc.message == "Too many requests. Please retry after a short delay."
        else:
            allowed += 1
    return allowed


# --- memory -------------------------------------------------------------------------------


async def test_memory_burst_then_limited() -> None:
    limiter = MemoryRateLimiter(rate=SLOW, burst=5)
    for _ in range(5):
        await limiter.check("key:a")
    with pytest.raises(RateLimited) as caught:
        await limiter.check("key:a")
    assert caught.value.retry_after >= 1
    assert isinstance(caught.value.retry_after, int)


def test_wait_time_burst_then_wait() -> None:
    limiter = MemoryRateLimiter(rate=2.0, burst=3)
    assert [limiter.wait_time("c", 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.wait_time("c", 100.0)
    assert wait == pytest.approx(0.5)  # one token per 1/rate seconds
    assert retry_after_seconds(wait) == 1


def test_refills_over_time() -> None:
    limiter = MemoryRateLimiter(rate=2.0, burst=3)
    for _ in range(3):
        assert limiter.wait_time("c", 0.0) == 0.0
    assert limiter.wait_time("c", 0.0) > 0
    assert limiter.wait_time("c", 0.25) > 0  # half a token is not a request
    assert limiter.wait_time("c", 0.5) == 0.0  # one token back
    assert limiter.wait_time("c", 0.5) > 0
    # a long pause refills up to the burst, not beyond
    allowed = sum(limiter.wait_time("c", 1000.0) == 0.0 for _ in range(10))
    assert allowed == 3


def test_steady_rate_is_allowed() -> None:
    limiter = MemoryRateLimiter(rate=4.0, burst=1)
    assert all(limiter.wait_time("c", n * 0.25) == 0.0 for n in range(100))
    assert limiter.wait_time("c", 99 * 0.25) > 0  # but not twice in the same tick


def test_refused_requests_do_not_consume_tokens() -> None:
    limiter = MemoryRateLimiter(rate=1.0, burst=1)
    assert limiter.wait_time("c", 0.0) == 0.0
    for _ in range(50):
        assert limiter.wait_time("c", 0.1) > 0
    assert limiter.wait_time("c", 1.0) == 0.0


def test_wait_shrinks_as_time_passes() -> None:
    limiter = MemoryRateLimiter(rate=1.0, burst=1)
    limiter.wait_time("c", 0.0)
    first = limiter.wait_time("c", 0.0)
    later = limiter.wait_time("c", 0.6)
    assert first == pytest.approx(1.0)
    assert later == pytest.approx(0.4)


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after_seconds(0.001) == 1
    assert retry_after_seconds(1.0) == 1
    assert retry_after_seconds(1.2) == 2
    limiter = MemoryRateLimiter(rate=0.1, burst=1)
    limiter.wait_time("c", 0.0)
    assert retry_after_seconds(limiter.wait_time("c", 0.0)) == 10


async def test_credentials_are_independent() -> None:
    limiter = MemoryRateLimiter(rate=SLOW, burst=2)
    assert await allowed_count(limiter, "key:a", 5) == 2
    assert await allowed_count(limiter, "key:b", 5) == 2
    assert await allowed_count(limiter, "cert:a", 5) == 2
    with pytest.raises(RateLimited):
        await limiter.check("key:a")


def test_many_credentials_do_not_break_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the table of buckets is pruned, a credential that is still limited stays so."""
    import devreg.auth.rate_limit as rate_limit

    monkeypatch.setattr(rate_limit, "MAX_TRACKED", 50)
    limiter = MemoryRateLimiter(rate=1.0, burst=1)
    assert limiter.wait_time("busy", 0.0) == 0.0
    for n in range(200):
        assert limiter.wait_time(f"other-{n}", 0.5) == 0.0
    assert limiter.wait_time("busy", 0.5) > 0
    # once every bucket is full again, the table shrinks instead of growing forever
    assert limiter.wait_time("newcomer", 10.0) == 0.0
    assert len(limiter._buckets) < 10
    assert limiter.wait_time("busy", 10.0) == 0.0


async def test_no_rate_limiter_never_limits() -> None:
    limiter = NoRateLimiter()
    for _ in range(1000):
        await limiter.check("key:a")
    await limiter.close()


@pytest.mark.parametrize("rate", [0, -1, 0.0])
async def test_make_rate_limiter_zero_turns_limits_off(rate: float) -> None:
    limiter = make_rate_limiter(rate, 1, None)
    assert isinstance(limiter, NoRateLimiter)
    assert await allowed_count(limiter, "key:a", 100) == 100


async def test_make_rate_limiter_in_memory() -> None:
    limiter = make_rate_limiter(SLOW, 3, None)
    assert isinstance(limiter, MemoryRateLimiter)
    assert await allowed_count(limiter, "key:a", 10) == 3


async def test_make_rate_limiter_burst_at_least_one() -> None:
    limiter = make_rate_limiter(SLOW, 0, None)
    assert await allowed_count(limiter, "key:a", 10) == 1


# --- Redis --------------------------------------------------------------------------------


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture
async def redis_pair(redis_url: str) -> AsyncIterator[tuple[RedisRateLimiter, RedisRateLimiter]]:
    """Two limiters with their own connections, as two app processes would have."""
    first = RedisRateLimiter(redis_url, SLOW, 5)
    second = RedisRateLimiter(redis_url, SLOW, 5)
    yield first, second
    await first.close()
    await second.close()


def fresh_credential() -> str:
    return "key:test-" + secrets.token_hex(8)


async def test_make_rate_limiter_with_redis_url(redis_url: str) -> None:
    limiter = make_rate_limiter(SLOW, 2, redis_url)
    try:
        assert isinstance(limiter, RedisRateLimiter)
        assert await allowed_count(limiter, fresh_credential(), 6) == 2
    finally:
        await limiter.close()


async def test_redis_two_instances_share_one_bucket(
    redis_pair: tuple[RedisRateLimiter, RedisRateLimiter],
) -> None:
    first, second = redis_pair
    credential = fresh_credential()
    allowed = 0
    for n in range(20):
        allowed += await allowed_count(first if n % 2 else second, credential, 1)
    assert allowed == 5  # the burst, once, across both "processes"
    assert not first._degraded and not second._degraded


async def test_redis_concurrent_checks_share_one_bucket(
    redis_pair: tuple[RedisRateLimiter, RedisRateLimiter],
) -> None:
    first, second = redis_pair
    credential = fresh_credential()
    results = await asyncio.gather(
        *((first if n % 2 else second).check(credential) for n in range(40)),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 5
    assert all(r is None or isinstance(r, RateLimited) for r in results), results


async def test_redis_credentials_are_independent(
    redis_pair: tuple[RedisRateLimiter, RedisRateLimiter],
) -> None:
    first, second = redis_pair
    a, b = fresh_credential(), fresh_credential()
    assert await allowed_count(first, a, 8) == 5
    assert await allowed_count(second, b, 8) == 5


async def test_redis_retry_after_is_honoured(redis_url: str) -> None:
    """Refused with Retry-After; a client that waits that long is served again."""
    limiter = RedisRateLimiter(redis_url, 2.0, 1)
    credential = fresh_credential()
    try:
        await limiter.check(credential)
        with pytest.raises(RateLimited) as caught:
            await limiter.check(credential)
        assert caught.value.retry_after == 1  # half a second, rounded up to whole seconds
        await asyncio.sleep(caught.value.retry_after)
        await limiter.check(credential)
    finally:
        await limiter.close()


async def test_redis_unreachable_falls_back_to_memory_and_still_limits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = RedisRateLimiter(closed_port_url(), SLOW, 3)
    try:
        with caplog.at_level(logging.WARNING, logger="devreg.ratelimit"):
            assert await allowed_count(limiter, "key:a", 10) == 3
            assert await allowed_count(limiter, "key:b", 10) == 3
        warnings = [r for r in caplog.records if "redis unreachable" in r.getMessage()]
        assert len(warnings) == 1  # said once, not once per request
    finally:
        await limiter.close()


async def test_redis_unreachable_with_refuse_answers_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = make_rate_limiter(SLOW, 3, closed_port_url(), fallback_local=False)
    try:
        with caplog.at_level(logging.WARNING, logger="devreg.ratelimit"):
            for _ in range(3):  # every request, not just the first, and never RateLimited
                with pytest.raises(Unavailable, match="Rate limits are unavailable"):
                    await limiter.check("key:a")
        warnings = [r for r in caplog.records if "redis unreachable" in r.getMessage()]
        assert len(warnings) == 1 and "refused (503)" in warnings[0].getMessage()
    finally:
        await limiter.close()


def pending_connections(listener: socket.socket) -> int:
    listener.setblocking(False)
    count = 0
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


@pytest.fixture
def hung_redis() -> Iterator[tuple[str, socket.socket]]:
    """A port that completes TCP connections but never answers, like a stuck Redis."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0", listener


async def test_hung_redis_is_not_asked_on_every_request(
    hung_redis: tuple[str, socket.socket],
) -> None:
    url, listener = hung_redis
    limiter = RedisRateLimiter(url, SLOW, 3)
    try:
        assert await allowed_count(limiter, "key:a", 10) == 3  # still limited, in memory
    finally:
        await limiter.close()
    # one attempt found Redis stuck; the other nine requests did not wait on it again
    assert pending_connections(listener) == 1


async def test_redis_is_tried_again_after_the_retry_interval(
    hung_redis: tuple[str, socket.socket],
) -> None:
    url, listener = hung_redis
    limiter = RedisRateLimiter(url, SLOW, 3)
    limiter.retry_interval = 0.0
    try:
        assert await allowed_count(limiter, "key:a", 2) == 2
    finally:
        await limiter.close()
    assert pending_connections(listener) == 2


def test_a_zero_cost_check_only_looks() -> None:
    limiter = MemoryRateLimiter(rate=1.0, burst=2)
    for _ in range(5):
        assert limiter.wait_time("peek", 100.0, cost=0) == 0
    assert limiter.wait_time("peek", 100.0) == 0
    assert limiter.wait_time("peek", 100.0) == 0
    assert limiter.wait_time("peek", 100.0, cost=0) > 0  # empty now: looking says so too


@pytest.mark.redis
async def test_a_zero_cost_check_only_looks_in_redis(redis_url: str) -> None:
    limiter = RedisRateLimiter(redis_url, rate=0.01, burst=2)
    credential = "peek-" + secrets.token_hex(8)
    try:
        for _ in range(5):
            await limiter.check(credential, cost=0)
        await limiter.check(credential)
        await limiter.check(credential)
        with pytest.raises(RateLimited):
            await limiter.check(credential, cost=0)
    finally:
        await limiter.close()
