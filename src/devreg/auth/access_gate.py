"""What one process knows of keys and accounts between reads of the store, and the rule
that keeps that knowledge from outliving a revocation.

A bearer token names its key; a device certificate names its device, hence its account.
Reading the key or the account on every request would cost the hot path a statement, so
this process caches them, under one rule (ARCHITECTURE.md, "Access mark"):

    A cached state is used at time t only if it was read under the access mark's
    generation g, and the latest read of the mark both saw g and *started* less than
    ACCESS_MARK_MAX_AGE before t.

A revocation (or expiry change, or disabled account) moves the mark in its own
transaction and returns REVOCATION_WAIT after its commit. A mark read that started after
the commit sees the new generation, and every state tagged with the old one is dropped; a
read that started before it stops counting ACCESS_MARK_MAX_AGE later, which is before the
revocation returns. So no request that arrives after it returned is accepted on the old
state. A background task re-reads the mark twice per ACCESS_MARK_MAX_AGE, so a request
almost never waits; when the store cannot be read the answer is 503, never the old state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable

from devreg.core.access_mark import ACCESS_MARK_MAX_AGE
from devreg.core.api_keys import check_scope, usable_key
from devreg.core.clock import now_us
from devreg.core.errors import AccountDisabled, DomainError, Unauthenticated
from devreg.core.records import ApiKey, Caller, KeyStanding
from devreg.core.store import DeviceStore

log = logging.getLogger("devreg.access")

CACHED_KEYS = 4096
# Not a secret: the refusal of a token whose key is not valid any more.
STALE_KEY_REFUSAL = "The API key of this bearer token is not valid now: log in with a valid key"
LAST_USED_FLUSH_SECONDS = 60.0


class AccessGate:
    """One per process (server/app.py). Keys by id for bearer tokens, the disabled
    accounts for device certificates and EST; and the keys' last use, flushed now and then
    (a key's `last_used_at` is not a write per request)."""

    def __init__(
        self,
        store: DeviceStore,
        *,
        max_age: float = ACCESS_MARK_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
        cached_keys: int = CACHED_KEYS,
    ) -> None:
        self._store = store
        self._max_age = max_age
        self._clock = clock
        self._cached_keys = cached_keys
        self._generation = -1  # no mark read yet
        self._read_started = -math.inf
        self._disabled: frozenset[bytes] = frozenset()
        self._keys: dict[bytes, KeyStanding] = {}
        self._reading: tuple[float, asyncio.Task[None]] | None = None
        self._used: dict[bytes, int] = {}
        self._flushing: asyncio.Future[None] | None = None

    # --- the mark

    def current(self) -> bool:
        """Whether the last mark read started less than max_age ago (a clock that went
        back counts as not current)."""
        return 0.0 <= self._clock() - self._read_started < self._max_age

    async def refresh(self) -> None:
        """Reads the mark, or joins a read in flight if that one started within max_age
        (an older one could not make the state current when it ends)."""
        now = self._clock()
        reading = self._reading
        if reading is None or reading[1].done() or not 0.0 <= now - reading[0] < self._max_age:
            reading = (now, asyncio.ensure_future(self._read(now)))
            self._reading = reading
        try:
            await asyncio.shield(reading[1])
        finally:
            if self._reading is reading and reading[1].done():
                self._reading = None

    async def _read(self, started: float) -> None:
        generation, disabled = await self._store.access_snapshot()
        # Two reads may end out of order: keep the newest state, and the latest start (a
        # newer generation was read after the other read's start, so it vouches for it).
        if generation > self._generation:
            self._generation = generation
            self._disabled = disabled
            self._keys.clear()
        self._read_started = max(self._read_started, started)

    async def run_refresher(self) -> None:
        """Keeps the mark current and flushes last-used times; until cancelled."""
        flushed = self._clock()
        while True:
            try:
                await self.refresh()
            except DomainError as exc:  # the store is away: requests answer 503 meanwhile
                log.warning("access mark not read: %s", exc)
            except Exception:  # never let the task die: requests would all read the mark
                log.exception("access mark not read")
            if self._clock() - flushed >= LAST_USED_FLUSH_SECONDS:
                flushed = self._clock()
                # on its own: a slow write must not hold up the mark's reads
                self._flushing = asyncio.ensure_future(self.flush_last_used())
            await asyncio.sleep(self._max_age / 2)

    # --- keys (bearer tokens)

    def cached_key(self, key_id: bytes) -> KeyStanding | None:
        """The key's state if it may be trusted now without a read (the hot path)."""
        if not 0.0 <= self._clock() - self._read_started < self._max_age:
            return None
        standing = self._keys.get(key_id)
        if standing is None or standing.generation != self._generation:
            return None
        return standing

    async def load_key(self, key_id: bytes) -> KeyStanding | None:
        """The key's state read now (current by construction), remembered if it was read
        under the generation this process holds."""
        if not self.current():
            await self.refresh()
        cached = self.cached_key(key_id)
        if cached is not None:
            return cached
        standing = await self._store.key_standing_by_id(key_id)
        if standing is not None and standing.generation == self._generation:
            if len(self._keys) >= self._cached_keys:
                del self._keys[next(iter(self._keys))]  # oldest first: a cheap bound
            self._keys[key_id] = standing
        return standing

    def admit(
        self,
        caller: Caller,
        standing: KeyStanding | None,
        method: str,
        refusal: str = STALE_KEY_REFUSAL,
    ) -> ApiKey:
        """The key of a bearer token's caller (verified, cached across requests), if it
        may be used now for `method`, by the same account and mode. The caller takes the
        key's scope as stored from it, never from a claim."""
        now = now_us()
        key = usable_key(standing, now, refusal)
        if key.account_id != caller.account_id or key.live_mode != caller.live_mode:
            raise Unauthenticated(refusal)  # cannot be signed by us; cheap to check
        check_scope(key.scope, method)
        self._used[key.id] = now
        return key

    async def token_key(
        self, caller: Caller, method: str, refusal: str = STALE_KEY_REFUSAL
    ) -> ApiKey:
        """`admit` with the key read when the cached state may not be trusted now: for a
        bearer token's caller, and for any key's once its request's body has arrived."""
        assert caller.key_id is not None  # a token's caller always names its key
        standing = self.cached_key(caller.key_id)
        if standing is None:
            standing = await self.load_key(caller.key_id)
        return self.admit(caller, standing, method, refusal)

    def used(self, key: ApiKey, at: int) -> None:
        """An x-api-key request: its key's last use (flushed later)."""
        self._used[key.id] = at

    # --- accounts (device certificates, EST)

    async def check_account(self, account_id: bytes) -> None:
        """AccountDisabled if the account is disabled (as of a mark read within max_age)."""
        if not self.current():
            await self.refresh()
        if account_id in self._disabled:
            raise AccountDisabled(account_id)

    # --- last use

    async def flush_last_used(self) -> None:
        """Writes the last-used times seen since the last flush; a failed write keeps them
        for the next one."""
        used, self._used = self._used, {}
        if not used:
            return
        try:
            await self._store.touch_api_keys(used)
        except Exception as exc:  # kept for the next flush, whatever went wrong
            log.warning("last-used times of %d keys not stored yet: %s", len(used), exc)
            for key_id, at in used.items():
                self._used[key_id] = max(at, self._used.get(key_id, 0))

    async def close(self) -> None:
        if self._flushing is not None:
            with contextlib.suppress(Exception):
                await self._flushing
        if self._reading is not None:
            self._reading[1].cancel()
            with contextlib.suppress(asyncio.CancelledError, DomainError):
                await self._reading[1]
        await self.flush_last_used()
