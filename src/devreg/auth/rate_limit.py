"""Per-credential rate limits: a token bucket of `rate` requests/second holding `burst`.

In memory by default (per process); in Redis when configured, so that the limit holds
across processes. If Redis cannot be reached the limiter falls back to the in-memory
bucket and logs it, rather than refusing or waving through every request.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Protocol

from devreg.core.errors import RateLimited, Unavailable

log = logging.getLogger("devreg.ratelimit")

MAX_TRACKED = 100_000
# After Redis fails, stay on the in-memory buckets this long before trying it again: a hung
# Redis would otherwise cost every request the full socket timeout.
REDIS_RETRY_SECONDS = 1.0


class RateLimiter(Protocol):
    async def check(self, credential: str, cost: int = 1) -> None:
        """Take `cost` requests from `credential`'s bucket; RateLimited when it is empty.
        With cost 0 it only looks: RateLimited while the bucket is empty."""

    async def close(self) -> None: ...


def retry_after_seconds(wait: float) -> int:
    return max(1, math.ceil(wait))


class NoRateLimiter:
    async def check(self, credential: str, cost: int = 1) -> None:
        return None

    async def close(self) -> None:
        return None


class MemoryRateLimiter:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}

    def wait_time(self, credential: str, now: float, cost: int = 1) -> float:
        """Seconds until a request would be allowed; 0 when it is allowed (and counted)."""
        tokens, last = self._buckets.get(credential, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[credential] = (tokens - cost, now)
            if len(self._buckets) > MAX_TRACKED:
                self._forget_full(now)
            return 0.0
        self._buckets[credential] = (tokens, now)
        return (1 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        # A bucket untouched for burst/rate seconds is full again: same as no entry.
        horizon = self.burst / self.rate
        for credential, (_, last) in list(self._buckets.items()):
            if now - last >= horizon:
                del self._buckets[credential]

    async def check(self, credential: str, cost: int = 1) -> None:
        wait = self.wait_time(credential, time.monotonic(), cost)
        if wait > 0:
            raise RateLimited(retry_after_seconds(wait))

    async def close(self) -> None:
        return None


# Redis keeps the bucket as a hash; TIME makes every process share the server's clock.
_BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1])
local ts = tonumber(data[2])
if tokens == nil or ts == nil then tokens = burst; ts = now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - cost else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens),
           'ts', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return string.format('%.6f', wait)
"""


class RedisRateLimiter:
    """The shared bucket. When Redis cannot answer: with `fallback_local` (the default)
    each process limits on its own until Redis is back; without, every request is refused
    with Unavailable (503), for operators who would rather stop than exceed the limit."""

    def __init__(self, url: str, rate: float, burst: int, *, fallback_local: bool = True) -> None:
        import redis.asyncio as redis_asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError

        self.rate = rate
        self.burst = burst
        self._client = redis_asyncio.Redis.from_url(
            url,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            # A pooled connection that Redis dropped (it restarted) fails on its next use:
            # once more on a new connection, or every stale connection would look like a
            # new outage. Not on a timeout: a hung Redis costs its 0.5 s only once.
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self._script = self._client.register_script(_BUCKET_SCRIPT)
        self._fallback = MemoryRateLimiter(rate, burst)
        self._fallback_local = fallback_local
        self._degraded = False
        self._retry_at = 0.0
        self.retry_interval = REDIS_RETRY_SECONDS

    async def check(self, credential: str, cost: int = 1) -> None:
        from redis.exceptions import RedisError

        if self._degraded and time.monotonic() < self._retry_at:
            await self._without_redis(credential, cost)
            return
        try:
            reply = await self._script(
                keys=["devreg:rl:" + credential], args=[self.rate, self.burst, cost]
            )
        except (RedisError, OSError) as exc:
            if not self._degraded:
                log.warning(
                    "redis unreachable, %s until it is back: %s",
                    "rate limits are per process"
                    if self._fallback_local
                    else "requests are refused (503)",
                    type(exc).__name__,
                )
                self._degraded = True
            self._retry_at = time.monotonic() + self.retry_interval
            await self._without_redis(credential, cost)
            return
        if self._degraded:
            log.warning("redis reachable again, rate limits are shared across processes")
            self._degraded = False
        wait = float(reply)
        if wait > 0:
            raise RateLimited(retry_after_seconds(wait))

    async def _without_redis(self, credential: str, cost: int) -> None:
        if not self._fallback_local:
            raise Unavailable("Rate limits are unavailable: retry shortly")
        await self._fallback.check(credential, cost)

    async def close(self) -> None:
        await self._client.aclose()


def make_rate_limiter(
    rate: float, burst: int, redis_url: str | None, *, fallback_local: bool = True
) -> RateLimiter:
    if rate <= 0:
        return NoRateLimiter()
    burst = max(1, burst)
    if redis_url:
        return RedisRateLimiter(redis_url, rate, burst, fallback_local=fallback_local)
    return MemoryRateLimiter(rate, burst)
