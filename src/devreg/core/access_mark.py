"""How long a process may trust what it read of keys and accounts, and how long a change
that may refuse a credential waits after its commit before it returns (ARCHITECTURE.md,
"Access mark", has the argument). Constants, not settings: every host must use the same."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

# A cached key state or set of disabled accounts is used only while the read of the
# access mark it was checked against started less than this long ago (s).
ACCESS_MARK_MAX_AGE = 0.25
# For two hosts' monotonic clocks running at slightly different rates over that time.
PROPAGATION_MARGIN = 0.01
REVOCATION_WAIT = ACCESS_MARK_MAX_AGE + PROPAGATION_MARGIN

Sleep = Callable[[float], Awaitable[None]]


async def until_everywhere(sleep: Sleep = asyncio.sleep) -> None:
    """Waits until no process can still trust a state read before the caller's commit."""
    await sleep(REVOCATION_WAIT)
