"""Key rotation's rules on both stores (core/api_keys.py): a key is rotated once, never
lengthens the old key's life, never gives a successor more rights than the key asking,
counts against the account's cap, and an overlap that rounds to nothing is a revocation."""

from __future__ import annotations

import asyncio

import pytest

from devreg.core.api_keys import (
    HOUR_US,
    MAX_USABLE_KEYS,
    KeyStatus,
    create_key,
    key_status,
    rotate_key,
)
from devreg.core.clock import now_us
from devreg.core.errors import Conflict, QuotaExceeded
from devreg.core.store import DeviceStore
from tests.storage.conftest import StoredAccount, stored_account
from tests.support.origins import TEST_ORIGIN


async def no_wait(seconds: float) -> None:
    del seconds


@pytest.fixture
async def account(store: DeviceStore) -> StoredAccount:
    return await stored_account(store)


async def test_a_key_is_rotated_once_and_its_successor_next(
    store: DeviceStore, account: StoredAccount
) -> None:
    _, new, old = await rotate_key(
        store, account.live_key.id, TEST_ORIGIN, overlap_hours=1, sleep=no_wait
    )
    assert key_status(old, now_us()) is KeyStatus.ACTIVE
    with pytest.raises(Conflict, match="rotated already"):
        await rotate_key(store, old.id, TEST_ORIGIN, overlap_hours=720, sleep=no_wait)
    stored = await store.api_key(old.id)
    assert stored is not None and stored.expires_at == old.expires_at  # not lengthened
    _, newer, _ = await rotate_key(store, new.id, TEST_ORIGIN, overlap_hours=0, sleep=no_wait)
    assert newer.rotated_from == new.id


async def test_two_rotations_at_once_give_one_successor_and_the_shorter_life_holds(
    store: DeviceStore, account: StoredAccount
) -> None:
    results = await asyncio.gather(
        rotate_key(store, account.live_key.id, TEST_ORIGIN, overlap_hours=0.001, sleep=no_wait),
        rotate_key(store, account.live_key.id, TEST_ORIGIN, overlap_hours=720, sleep=no_wait),
        return_exceptions=True,
    )
    done = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(done) == 1 and len(refused) == 1 and isinstance(refused[0], Conflict), results
    stored = await store.api_key(account.live_key.id)
    assert stored is not None and stored.expires_at == done[0][2].expires_at
    successors = [k for k in await store.api_keys(account.id) if k.rotated_from == stored.id]
    assert len(successors) == 1


async def test_a_successor_never_outlives_the_key_that_asked_for_it(
    store: DeviceStore, account: StoredAccount
) -> None:
    _, short = await create_key(store, account.id, True, "one day", TEST_ORIGIN, expires_in_days=1)
    assert short.expires_at is not None
    _, successor, _ = await rotate_key(
        store, account.live_key.id, TEST_ORIGIN, creator=short, sleep=no_wait
    )
    assert successor.expires_at == short.expires_at  # the default key never expired
    _, itself, _ = await rotate_key(store, short.id, TEST_ORIGIN, creator=short, sleep=no_wait)
    assert itself.expires_at == short.expires_at  # rotating itself renews nothing


async def test_rotations_count_against_the_cap(store: DeviceStore, account: StoredAccount) -> None:
    for n in range(MAX_USABLE_KEYS - 2):  # the account's two default keys count too
        await create_key(store, account.id, True, f"key {n}", TEST_ORIGIN)
    with pytest.raises(QuotaExceeded):
        await create_key(store, account.id, True, "one more", TEST_ORIGIN)
    with pytest.raises(QuotaExceeded):
        await rotate_key(store, account.live_key.id, TEST_ORIGIN, overlap_hours=1, sleep=no_wait)
    # with no overlap the old key ends as the new one starts: room for it
    await rotate_key(store, account.live_key.id, TEST_ORIGIN, overlap_hours=0, sleep=no_wait)


async def test_an_overlap_that_rounds_to_nothing_is_a_revocation(
    store: DeviceStore, account: StoredAccount
) -> None:
    tiny = 0.1 / HOUR_US  # a tenth of a microsecond
    _, _, old = await rotate_key(
        store, account.live_key.id, TEST_ORIGIN, overlap_hours=tiny, sleep=no_wait
    )
    assert old.revoked_at is not None and key_status(old, now_us()) is KeyStatus.REVOKED
