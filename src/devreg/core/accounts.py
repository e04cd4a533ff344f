"""Accounts: every account starts with a default division and a default device profile,
so that a device created without naming either (dialect F does) still has both."""

from __future__ import annotations

import msgspec

from devreg.core.errors import InvalidInput
from devreg.core.ids import new_id
from devreg.core.records import Account, DeviceProfile, Division

MAX_NAME = 200
DEFAULT_DIVISION_NAME = "Default"
DEFAULT_PROFILE_NAME = "Default"


class NewAccount(msgspec.Struct, frozen=True):
    account: Account
    division: Division
    profile: DeviceProfile


def check_name(name: str, what: str = "name") -> str:
    stripped = name.strip()
    if not stripped:
        raise InvalidInput(f"{what} must not be empty", what)
    if len(stripped) > MAX_NAME:
        raise InvalidInput(f"{what} must be at most {MAX_NAME} characters", what)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in stripped):
        raise InvalidInput(f"{what} must not contain control characters", what)
    return stripped


def build_account(name: str, now: int) -> NewAccount:
    account = Account(id=new_id(), name=check_name(name), created_at=now)
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
