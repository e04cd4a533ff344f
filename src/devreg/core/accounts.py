"""Accounts: every account starts with a default division and a default device profile,
so that a device created without naming either (dialect F does) still has both."""

from __future__ import annotations

import asyncio

import msgspec

from devreg.core.access_mark import Sleep, until_everywhere
from devreg.core.clock import now_us
from devreg.core.errors import InvalidInput, NotFound
from devreg.core.ids import new_id, parse_prefixed
from devreg.core.records import Account, DeviceProfile, Division, Origin
from devreg.core.store import DeviceStore
from devreg.core.text import check_text
from devreg.core.versions import DEFAULT_VERSION, check_served

MAX_NAME = 200
DEFAULT_DIVISION_NAME = "Default"
DEFAULT_PROFILE_NAME = "Default"


class NewAccount(msgspec.Struct, frozen=True):
    account: Account
    division: Division
    profile: DeviceProfile


def check_name(name: str, what: str = "name") -> str:
    """A name without its surrounding whitespace: 1-200 characters under the text rule
    (`core/text.py`), in NFC."""
    stripped = check_text(name.strip(), what, MAX_NAME)
    if not stripped:
        raise InvalidInput(f"{what} must not be empty", what)
    return stripped


def build_account(name: str, now: int, api_version: str = DEFAULT_VERSION) -> NewAccount:
    account = Account(
        id=new_id(), name=check_name(name), created_at=now, api_version=check_served(api_version)
    )
    division = Division(
        id=new_id(),
        account_id=account.id,
        name=DEFAULT_DIVISION_NAME,
        is_default=True,
        created_at=now,
        updated_at=now,
    )
    # The default profile lets devices read and write their record and renew their
    # certificate: a device made through dialect F has no other way to get these rights.
    profile = DeviceProfile(
        id=new_id(),
        account_id=account.id,
        division_id=division.id,
        name=DEFAULT_PROFILE_NAME,
        is_default=True,
        allow_read=True,
        allow_write=True,
        allow_renew=True,
        created_at=now,
        updated_at=now,
    )
    return NewAccount(account=account, division=division, profile=profile)


async def set_default_version(
    store: DeviceStore, account_id_text: str, version: str, origin: Origin
) -> bytes:
    """Makes `version` the account's default dialect F version; the account's id. Tokens
    carry the default they were issued with: the new one holds from the next login."""
    check_served(version)
    account_id = parse_prefixed("acc", account_id_text)
    if account_id is None or not await store.set_account_api_version(account_id, version, origin):
        raise NotFound(f"No such account: {account_id_text[:64]!r}")
    return account_id


def parse_account_id(text: str) -> bytes:
    account_id = parse_prefixed("acc", text)
    if account_id is None:
        raise NotFound(f"No such account: {text[:64]!r}")
    return account_id


async def set_account_disabled(
    store: DeviceStore,
    account_id_text: str,
    disabled: bool,
    origin: Origin,
    sleep: Sleep = asyncio.sleep,
) -> Account:
    """Disables or enables the account. Nothing is deleted: while it is disabled its keys,
    tokens and device certificates are refused, and enabling restores all of them. Returns
    once every devreg process holds the new state; doing it twice changes nothing, and
    waits all the same (a second call must not return before the first one's change holds
    everywhere)."""
    account_id = parse_account_id(account_id_text)
    result = await store.set_account_disabled(account_id, now_us() if disabled else None, origin)
    if result is None:
        raise NotFound(f"No such account: {account_id_text[:64]!r}")
    await until_everywhere(sleep)
    return result[1]
