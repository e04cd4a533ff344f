"""Failed credential attempts (API keys at /login and in `x-api-key`), counted per client
address in the rate limiter.

An address over the limit is refused before its credential is even looked up, so guessing
is slowed and floods of bad keys cost no database reads; a successful attempt costs
nothing. The count is per address, not per account: knowing an account's id is not
enough to lock its owner out. One bucket serves both dialects, so switching endpoints
does not reset it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from devreg.auth.rate_limit import RateLimiter
from devreg.core.errors import RateLimited, Unauthenticated

T = TypeVar("T")


def failures_bucket(scope: Mapping[str, Any]) -> str:
    client = scope.get("client")
    return "credential-failures:" + (str(client[0]) if client else "-")


async def guarded(
    limiter: RateLimiter, scope: Mapping[str, Any], attempt: Callable[[], Awaitable[T]]
) -> T:
    """`attempt()`'s answer; RateLimited without calling it if the client's address is
    over the limit of failures; an Unauthenticated from it is counted against the address."""
    bucket = failures_bucket(scope)
    await limiter.check(bucket, cost=0)
    try:
        return await attempt()
    except Unauthenticated:
        with contextlib.suppress(RateLimited):  # this failure is answered as itself
            await limiter.check(bucket)
        raise
