"""The access mark (migration 0008) on both backends: a change to a key's revocation,
expiry or scope, or to an account's disabling, moves it in the same transaction (a change
rolled back leaves it), and nothing else does (a new key, its last-used time, the
account's API version). Keys made before 0008 read back as `default` keys with scope
write."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from devreg.core.records import Scope
from devreg.core.store import DeviceStore
from devreg.storage.base import SqlDeviceStore, SqlRunner
from tests.storage.conftest import NOW, StoredAccount, stored_account
from tests.support.origins import TEST_ORIGIN


@pytest.fixture
async def account(store: DeviceStore) -> StoredAccount:
    return await stored_account(store)


async def run(store: DeviceStore, statement: str, params: Sequence[object]) -> None:
    """One statement in a transaction of its own, as the store's writes are."""
    assert isinstance(store, SqlDeviceStore)

    async def work(tx: SqlRunner) -> None:
        await tx.run(statement, params)

    await store.atomic(work)


async def test_the_account_s_first_keys_are_default_write_keys(
    store: DeviceStore, account: StoredAccount
) -> None:
    key = await store.find_api_key(account.live_key.key_hash)
    assert key is not None
    assert (key.name, key.scope, key.expires_at, key.last_used_at, key.rotated_from) == (
        "default", Scope.WRITE, None, None, None,
    )  # fmt: skip
    assert key == account.live_key


@pytest.mark.parametrize(
    ("column", "value", "moves"),
    [
        ("revoked_at", NOW + 1, True),
        ("expires_at", NOW + 1, True),
        ("scope", "read", True),
        ("last_used_at", NOW + 1, False),
        ("name", "renamed", False),
    ],
)
async def test_a_key_s_state_moves_the_mark_and_its_other_columns_do_not(
    store: DeviceStore, account: StoredAccount, column: str, value: object, moves: bool
) -> None:
    statement = f"UPDATE api_keys SET {column} = ? WHERE id = ?"
    before = await store.access_mark()
    await run(store, statement, (value, account.live_key.id))
    assert await store.access_mark() == before + moves
    # The same value again is no change: the mark stays.
    await run(store, statement, (value, account.live_key.id))
    assert await store.access_mark() == before + moves


async def test_disabling_and_enabling_an_account_move_the_mark(
    store: DeviceStore, account: StoredAccount
) -> None:
    before = await store.access_mark()
    await run(store, "UPDATE accounts SET disabled_at = ? WHERE id = ?", (NOW, account.id))
    assert await store.access_mark() == before + 1
    await run(store, "UPDATE accounts SET disabled_at = NULL WHERE id = ?", (account.id,))
    assert await store.access_mark() == before + 2
    await store.set_account_api_version(account.id, "2025-09-14.anode", TEST_ORIGIN)
    assert await store.access_mark() == before + 2


async def test_a_new_account_and_its_keys_leave_the_mark(store: DeviceStore) -> None:
    before = await store.access_mark()
    await stored_account(store, "Another")
    assert await store.access_mark() == before


async def test_a_revocation_rolled_back_leaves_the_mark(
    store: DeviceStore, account: StoredAccount
) -> None:
    assert isinstance(store, SqlDeviceStore)
    before = await store.access_mark()

    async def revoke_then_fail(tx: SqlRunner) -> None:
        await tx.run("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (NOW, account.live_key.id))
        raise RuntimeError("after the revocation")

    with pytest.raises(RuntimeError):
        await store.atomic(revoke_then_fail)
    assert await store.access_mark() == before
    key = await store.find_api_key(account.live_key.key_hash)
    assert key is not None and key.revoked_at is None
