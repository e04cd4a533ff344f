"""The access gate (auth/access_gate.py) on both stores, with a clock the test moves: what a
process cached of a key or an account is never trusted once the revocation that ended it
has returned, however the mark reads and the revocation interleave."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from devreg.auth.access_gate import AccessGate
from devreg.auth.tokens import TokenSigner
from devreg.core.access_mark import ACCESS_MARK_MAX_AGE, REVOCATION_WAIT
from devreg.core.accounts import set_account_disabled
from devreg.core.api_keys import create_key, revoke_key, rotate_key
from devreg.core.errors import AccountDisabled, Forbidden, Unauthenticated, Unavailable
from devreg.core.records import Caller, KeyStanding, Scope
from devreg.core.store import DeviceStore
from tests.storage.conftest import StoredAccount, stored_account
from tests.support.origins import TEST_ORIGIN

SIGNER = TokenSigner(bytes(range(32)))


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:  # a revoker's wait, on this clock
        self.now += seconds


class CountingStore:
    """The real store, counting the reads the gate makes."""

    def __init__(self, store: DeviceStore) -> None:
        self.store = store
        self.snapshots = 0
        self.key_reads = 0
        self.fail = False

    async def access_snapshot(self) -> tuple[int, frozenset[bytes]]:
        self.snapshots += 1
        if self.fail:
            raise Unavailable("the database is away")
        return await self.store.access_snapshot()

    async def key_standing_by_id(self, key_id: bytes) -> KeyStanding | None:
        self.key_reads += 1
        return await self.store.key_standing_by_id(key_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.fixture
async def account(store: DeviceStore) -> StoredAccount:
    return await stored_account(store)


def token_caller(account: StoredAccount) -> Caller:
    return SIGNER.verify(SIGNER.issue(account.live_key, int(time.time())))


async def test_a_cached_key_costs_no_read_while_the_mark_is_current(
    store: DeviceStore, account: StoredAccount
) -> None:
    clock, counting = Clock(), CountingStore(store)
    gate = AccessGate(counting, clock=clock)  # type: ignore[arg-type]
    caller = token_caller(account)
    assert (await gate.token_key(caller, "PATCH")).id == account.live_key.id
    assert (counting.snapshots, counting.key_reads) == (1, 1)
    for _ in range(100):
        clock.now += ACCESS_MARK_MAX_AGE / 200
        await gate.token_key(caller, "GET")
    assert (counting.snapshots, counting.key_reads) == (1, 1)
    clock.now += ACCESS_MARK_MAX_AGE / 2  # past the bound: the mark is read again, once
    assert gate.cached_key(account.live_key.id) is None
    await gate.token_key(caller, "GET")
    assert (counting.snapshots, counting.key_reads) == (2, 1)  # same generation: key kept


@pytest.mark.parametrize("lead", [0.0, 0.1, ACCESS_MARK_MAX_AGE - 0.001])
async def test_no_process_accepts_a_key_once_its_revocation_returned(
    store: DeviceStore, account: StoredAccount, lead: float
) -> None:
    """Another process (its own gate) cached the key `lead` s before the revoke committed:
    at the moment the revocation returns it refuses the key, and the token made from it."""
    clock = Clock()
    other = AccessGate(store, clock=clock)
    caller = token_caller(account)
    await other.token_key(caller, "GET")
    clock.now += lead
    assert other.cached_key(account.live_key.id) is not None or lead >= ACCESS_MARK_MAX_AGE
    await revoke_key(store, account.live_key.id, TEST_ORIGIN, sleep=clock.sleep)
    assert other.cached_key(account.live_key.id) is None
    with pytest.raises(Unauthenticated, match="not valid now"):
        await other.token_key(caller, "GET")


async def test_a_revocation_waits_the_bound_and_so_does_a_second_one(
    store: DeviceStore, account: StoredAccount
) -> None:
    """A second revoke (a retry, or another responder) changes nothing and still waits:
    it must not return while the first one's state may be cached somewhere."""
    clock = Clock()
    revoked = await revoke_key(store, account.live_key.id, TEST_ORIGIN, sleep=clock.sleep)
    assert revoked.revoked_at is not None
    assert clock.now == pytest.approx(1000.0 + REVOCATION_WAIT)
    again = await revoke_key(store, account.live_key.id, TEST_ORIGIN, sleep=clock.sleep)
    assert again.revoked_at == revoked.revoked_at
    assert clock.now == pytest.approx(1000.0 + 2 * REVOCATION_WAIT)


async def test_a_rotated_key_keeps_working_for_the_overlap_only(
    store: DeviceStore, account: StoredAccount
) -> None:
    clock = Clock()
    gate = AccessGate(store, clock=clock)
    caller = token_caller(account)
    await gate.token_key(caller, "GET")
    secret, new, old = await rotate_key(
        store, account.live_key.id, TEST_ORIGIN, overlap_hours=1, sleep=clock.sleep
    )
    assert secret.startswith("sk_live_") and new.rotated_from == old.id
    assert old.expires_at is not None
    await gate.token_key(caller, "GET")  # within the overlap: still good
    with_zero = await rotate_key(store, new.id, TEST_ORIGIN, overlap_hours=0, sleep=clock.sleep)
    assert with_zero[2].revoked_at is not None
    new_caller = SIGNER.verify(SIGNER.issue(new, int(time.time())))
    with pytest.raises(Unauthenticated):
        await gate.token_key(new_caller, "GET")


async def test_a_disabled_account_is_refused_everywhere_once_disable_returned(
    store: DeviceStore, account: StoredAccount
) -> None:
    clock = Clock()
    gate = AccessGate(store, clock=clock)
    caller = token_caller(account)
    await gate.token_key(caller, "GET")
    await gate.check_account(account.id)
    text = "acc_" + account.id.hex()
    await set_account_disabled(store, text, True, TEST_ORIGIN, sleep=clock.sleep)
    with pytest.raises(AccountDisabled):
        await gate.check_account(account.id)
    with pytest.raises(AccountDisabled):
        await gate.token_key(caller, "GET")
    await set_account_disabled(store, text, False, TEST_ORIGIN, sleep=clock.sleep)
    await gate.check_account(account.id)
    assert (await gate.token_key(caller, "GET")).id == account.live_key.id


async def test_a_read_key_s_token_may_read_and_may_not_write(
    store: DeviceStore, account: StoredAccount
) -> None:
    gate = AccessGate(store)
    _, read_key = await create_key(store, account.id, True, "reader", TEST_ORIGIN, scope=Scope.READ)
    caller = SIGNER.verify(SIGNER.issue(read_key, int(time.time())))
    assert (await gate.token_key(caller, "GET")).scope is Scope.READ
    for method in ("POST", "PATCH", "DELETE", "PUT"):
        with pytest.raises(Forbidden, match="read-only"):
            await gate.token_key(caller, method)


async def test_an_unreadable_mark_is_a_503_never_the_stale_state(
    store: DeviceStore, account: StoredAccount
) -> None:
    clock, counting = Clock(), CountingStore(store)
    gate = AccessGate(counting, clock=clock)  # type: ignore[arg-type]
    caller = token_caller(account)
    await gate.token_key(caller, "GET")
    counting.fail = True
    clock.now += ACCESS_MARK_MAX_AGE
    with pytest.raises(Unavailable):
        await gate.token_key(caller, "GET")
    with pytest.raises(Unavailable):
        await gate.check_account(account.id)
    counting.fail = False
    await gate.token_key(caller, "GET")


async def test_a_clock_that_went_back_makes_the_state_stale(
    store: DeviceStore, account: StoredAccount
) -> None:
    clock = Clock()
    gate = AccessGate(store, clock=clock)
    await gate.token_key(token_caller(account), "GET")
    clock.now -= 1.0
    assert not gate.current()
    assert gate.cached_key(account.live_key.id) is None


class SlowSnapshots(CountingStore):
    """Each mark read waits until the test lets it end."""

    def __init__(self, store: DeviceStore) -> None:
        super().__init__(store)
        self.release = asyncio.Event()

    async def access_snapshot(self) -> tuple[int, frozenset[bytes]]:
        self.snapshots += 1
        await self.release.wait()
        return await self.store.access_snapshot()


async def turns() -> None:
    for _ in range(10):  # the reads started are under way by then
        await asyncio.sleep(0)


async def test_a_request_joins_a_read_in_flight_only_if_it_started_within_the_bound(
    store: DeviceStore,
) -> None:
    clock, slow = Clock(), SlowSnapshots(store)
    gate = AccessGate(slow, clock=clock)  # type: ignore[arg-type]
    first = asyncio.ensure_future(gate.refresh())
    second = asyncio.ensure_future(gate.refresh())  # same instant: joins the first
    await turns()
    assert slow.snapshots == 1
    clock.now += ACCESS_MARK_MAX_AGE  # the first read is too old to vouch for now
    third = asyncio.ensure_future(gate.refresh())
    await turns()
    assert slow.snapshots == 2
    slow.release.set()
    await asyncio.gather(first, second, third)
    assert gate.current()


async def test_last_use_is_flushed_later_and_moves_no_mark(
    store: DeviceStore, account: StoredAccount
) -> None:
    gate = AccessGate(store)
    mark = await store.access_mark()
    await gate.token_key(token_caller(account), "GET")
    assert (await store.api_key(account.live_key.id)).last_used_at is None  # type: ignore[union-attr]
    await gate.flush_last_used()
    used = (await store.api_key(account.live_key.id)).last_used_at  # type: ignore[union-attr]
    assert used is not None
    gate.used(account.live_key, used - 5_000_000)  # an older time, from a slower worker
    await gate.flush_last_used()
    assert (await store.api_key(account.live_key.id)).last_used_at == used  # type: ignore[union-attr]
    assert await store.access_mark() == mark
