"""Helpers for store tests: an account with keys, and device records made by hand."""

from __future__ import annotations

from dataclasses import dataclass

from devreg.auth.api_keys import new_api_key
from devreg.core.accounts import NewAccount, build_account
from devreg.core.ids import new_id
from devreg.core.records import ApiKey, Device, DeviceStatus
from devreg.core.store import DeviceStore
from tests.support.origins import TEST_ORIGIN

NOW = 1_700_000_000_000_000


@dataclass
class StoredAccount:
    new: NewAccount
    live_secret: str
    live_key: ApiKey
    test_secret: str
    test_key: ApiKey

    @property
    def id(self) -> bytes:
        return self.new.account.id


async def stored_account(store: DeviceStore, name: str = "Acme") -> StoredAccount:
    new = build_account(name, NOW)
    live_secret, live_key = new_api_key(new.account.id, True, NOW)
    test_secret, test_key = new_api_key(new.account.id, False, NOW)
    await store.create_account(
        new.account, [live_key, test_key], new.division, new.profile, TEST_ORIGIN
    )
    return StoredAccount(new, live_secret, live_key, test_secret, test_key)


def device_for(
    account: StoredAccount | NewAccount,
    *,
    live_mode: bool = True,
    reference_id: str | None = None,
    created_at: int = NOW,
) -> Device:
    new = account.new if isinstance(account, StoredAccount) else account
    return Device(
        id=new_id(),
        account_id=new.account.id,
        live_mode=live_mode,
        reference_id=reference_id,
        device_identifier=None,
        division_id=new.division.id,
        profile_id=new.profile.id,
        status=DeviceStatus.ACTIVE,
        allow_read=True,
        allow_write=True,
        allow_renew=True,
        last_seen=None,
        created_at=created_at,
        updated_at=created_at,
        version=1,
    )
