"""Anonymous CRL fetches, limited per client address.

`/crl.pem` and `/crl.der` need no credential and answer about 46 bytes per revoked,
unexpired certificate (megabytes at tens of thousands), so each client address gets
CRL_FETCH_BURST fetches at once and CRL_FETCH_RATE a second after that: far more than a
relying party needs (a CRL is valid for a day; clients cache it until its nextUpdate), far
less than a flood. Shared across processes through Redis like the other limits, and off
with the others (`DEVREG_RATE_LIMIT=0`). Behind a `--trusted-proxy` the address is the one
the proxy names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devreg.auth.rate_limit import RateLimiter, make_rate_limiter

CRL_FETCH_RATE = 1.0  # fetches a second per client address, after the burst
CRL_FETCH_BURST = 10


def crl_fetch_bucket(scope: Mapping[str, Any]) -> str:
    client = scope.get("client")
    return "crl-fetches:" + (str(client[0]) if client else "-")


def make_crl_fetch_limiter(
    rate_limit: float, redis_url: str | None, *, fallback_local: bool = True
) -> RateLimiter:
    """The CRL fetches' limiter; none when rate limits are off (`rate_limit` 0)."""
    rate = CRL_FETCH_RATE if rate_limit > 0 else 0
    return make_rate_limiter(rate, CRL_FETCH_BURST, redis_url, fallback_local=fallback_local)


async def check_crl_fetch(limiter: RateLimiter, scope: Mapping[str, Any]) -> None:
    """RateLimited (429 with Retry-After) when the client's address is over its fetches."""
    await limiter.check(crl_fetch_bucket(scope))
