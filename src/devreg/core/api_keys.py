"""API keys as the core sees them: what a key may do (its scope), when it stops working
(revoked, expired, its account disabled), and the use cases that make, list, rotate and
revoke keys. The CLI and dialect D's `/iot/api/v2/api-key` call these, and every credential
check (x-api-key, `/login`, bearer tokens) applies `usable_key` and `check_scope`.

A key's secret is `sk_live_` or `sk_test_` plus 256 random bits; only its SHA-256 is
stored. A fast hash is right here (unlike for passwords): there is nothing to brute-force,
and finding the key stays one indexed read.

Revocation is instant across processes (ARCHITECTURE.md, "Access mark"): a process trusts
what it cached for a bounded time after the start of its last read of the access mark, and a
change that may refuse a credential returns only once that time has passed after its commit
(core/access_mark.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from enum import StrEnum

from devreg.core import reach
from devreg.core.access_mark import Sleep, until_everywhere
from devreg.core.accounts import check_name
from devreg.core.clock import now_us
from devreg.core.errors import (
    AccountDisabled,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    QuotaExceeded,
    Unauthenticated,
)
from devreg.core.ids import new_id, render_uuid
from devreg.core.paging import check_page
from devreg.core.records import ApiKey, KeyStanding, Origin, Scope
from devreg.core.store import DeviceStore, NotRotatable, OverLimit

LIVE_PREFIX = "sk_live_"
TEST_PREFIX = "sk_test_"
DEFAULT_KEY_NAME = "default"

MAX_EXPIRES_IN_DAYS = 3650
DEFAULT_OVERLAP_HOURS = 24.0
MAX_OVERLAP_HOURS = 720.0
MAX_USABLE_KEYS = 100  # unrevoked, unexpired keys per account, both modes together
MAX_KEY_DIVISIONS = 100  # divisions one key may be limited to
DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000


class KeyStatus(StrEnum):
    ACTIVE = "ACTIVE"
    EXPIRED = "EXPIRED"
    REVOKED = "REVOKED"


def hash_key(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def new_api_key(
    account_id: bytes,
    live_mode: bool,
    now: int,
    *,
    name: str = DEFAULT_KEY_NAME,
    scope: Scope = Scope.WRITE,
    expires_at: int | None = None,
    rotated_from: bytes | None = None,
    divisions: frozenset[bytes] | None = None,
) -> tuple[str, ApiKey]:
    """A fresh key: the secret (shown once) and the record to store."""
    if divisions is not None and not divisions:  # stored as no rows, it would read as all
        raise ValueError("a key limited to no division")
    prefix = LIVE_PREFIX if live_mode else TEST_PREFIX
    secret = prefix + secrets.token_urlsafe(32)
    record = ApiKey(
        id=new_id(), account_id=account_id, live_mode=live_mode, key_hash=hash_key(secret),
        prefix=secret[: len(prefix) + 4], created_at=now, name=name, scope=scope,
        expires_at=expires_at, rotated_from=rotated_from, divisions=divisions,
    )  # fmt: skip
    return secret, record


def key_status(key: ApiKey, now: int) -> KeyStatus:
    if key.revoked_at is not None:
        return KeyStatus.REVOKED
    if key.expires_at is not None and now >= key.expires_at:
        return KeyStatus.EXPIRED
    return KeyStatus.ACTIVE


def usable_key(standing: KeyStanding | None, now: int, refusal: str) -> ApiKey:
    """The key, if it may be used now: unknown, revoked and expired keys are refused alike
    (`refusal`, the dialect's wording), then a disabled account by name."""
    if standing is None or key_status(standing.key, now) is not KeyStatus.ACTIVE:
        raise Unauthenticated(refusal)
    if standing.account_disabled:
        raise AccountDisabled(standing.key.account_id)
    return standing.key


READ_METHODS = frozenset({"GET", "HEAD"})


def needed_scope(method: str) -> Scope:
    """Every route of both dialects reads with GET (or HEAD) and writes with anything else."""
    return Scope.READ if method in READ_METHODS else Scope.WRITE


def check_scope(scope: Scope, method: str) -> None:
    if scope is Scope.READ and needed_scope(method) is Scope.WRITE:
        raise Forbidden("This API key is read-only: it may not make changes")


def _check_no_more_rights(
    creator: ApiKey | None,
    live_mode: bool,
    scope: Scope,
    expires_at: int | None,
    divisions: frozenset[bytes] | None,
) -> None:
    """A key may make only keys with no more rights than its own (the CLI may make any)."""
    if creator is None:
        return
    if creator.scope is not Scope.WRITE:
        raise Forbidden("This API key is read-only: it may not make changes")
    if live_mode != creator.live_mode:
        raise Forbidden("An API key may only make keys of its own mode")
    del scope  # a write key may make a read or a write key
    if not reach.within(creator.divisions, divisions):
        raise Forbidden("An API key may only make keys limited to divisions it reaches itself")
    if creator.expires_at is not None and (expires_at is None or expires_at > creator.expires_at):
        raise Forbidden("An API key may not make a key that outlives it")


async def check_divisions(
    store: DeviceStore,
    account_id: bytes,
    division_ids: list[bytes] | None,
    creator: ApiKey | None = None,
) -> frozenset[bytes] | None:
    """The divisions a new key is limited to: the account's own, at least one (None: the
    key is not limited). For a limited creator, a division outside its own does not exist,
    as for another account's: its answer must not tell which ids are the account's."""
    if division_ids is None:
        return None
    chosen = frozenset(division_ids)
    if not 1 <= len(chosen) <= MAX_KEY_DIVISIONS:
        raise InvalidInput(
            f"division_ids must name from 1 to {MAX_KEY_DIVISIONS} divisions", "division_ids"
        )
    reached = None if creator is None else creator.divisions
    for division_id in sorted(chosen):
        if (reached is not None and division_id not in reached) or (
            await store.get_division(account_id, division_id) is None
        ):
            raise NotFound(f"Division {render_uuid(division_id)} does not exist")
    return chosen


def in_reach_of(manager: ApiKey | None, key: ApiKey) -> bool:
    """Whether the managing key (None: the CLI) may see and manage `key`: a limited key
    only those that reach no further than it does."""
    return manager is None or reach.within(manager.divisions, key.divisions)


def check_expires_in(days: int | None) -> None:
    if days is not None and not 1 <= days <= MAX_EXPIRES_IN_DAYS:
        raise InvalidInput(
            f"expires_in_days must be from 1 to {MAX_EXPIRES_IN_DAYS}", "expires_in_days"
        )


async def create_key(
    store: DeviceStore,
    account_id: bytes,
    live_mode: bool,
    name: str,
    origin: Origin,
    *,
    scope: Scope = Scope.WRITE,
    expires_in_days: int | None = None,
    division_ids: list[bytes] | None = None,
    creator: ApiKey | None = None,
) -> tuple[str, ApiKey]:
    """A new key of the account (its secret, shown once, and the record), limited to
    `division_ids` when given."""
    name = check_name(name)
    check_expires_in(expires_in_days)
    now = now_us()
    expires_at = None if expires_in_days is None else now + expires_in_days * DAY_US
    if await store.account(account_id) is None:
        raise NotFound(f"No such account: acc_{account_id.hex()}")
    divisions = await check_divisions(store, account_id, division_ids, creator)
    _check_no_more_rights(creator, live_mode, scope, expires_at, divisions)
    secret, key = new_api_key(
        account_id, live_mode, now, name=name, scope=scope, expires_at=expires_at,
        divisions=divisions,
    )  # fmt: skip
    if not await store.insert_api_key(key, MAX_USABLE_KEYS, now, origin):
        raise _over_the_cap()
    return secret, key


async def account_keys(store: DeviceStore, account_id: bytes) -> list[ApiKey]:
    if await store.account(account_id) is None:
        raise NotFound(f"No such account: acc_{account_id.hex()}")
    return await store.api_keys(account_id)


async def key_page(
    store: DeviceStore,
    account_id: bytes,
    live_mode: bool,
    *,
    limit: int,
    offset: int,
    manager: ApiKey | None = None,
) -> tuple[list[ApiKey], int]:
    """A page of the account's keys of one mode that `manager` may see, oldest first, and
    how many there are (an account holds a few hundred at most: revoked ones and
    MAX_USABLE_KEYS)."""
    check_page(limit, offset)
    keys = [
        key
        for key in await account_keys(store, account_id)
        if key.live_mode == live_mode and in_reach_of(manager, key)
    ]
    return keys[offset : offset + limit], len(keys)


async def find_key_of(
    store: DeviceStore,
    key_id: bytes,
    account_id: bytes | None = None,
    live_mode: bool | None = None,
    manager: ApiKey | None = None,
) -> ApiKey:
    """The key with this id; NotFound if there is none, or it is another account's or
    mode's (when those are given: an HTTP caller sees only its own), or reaches further
    than the `manager` key asking."""
    key = await store.api_key(key_id)
    if (
        key is None
        or (account_id is not None and key.account_id != account_id)
        or (live_mode is not None and key.live_mode != live_mode)
        or not in_reach_of(manager, key)
    ):
        raise NotFound(f"API key with id {render_uuid(key_id)} does not exist")
    return key


async def revoke_key(
    store: DeviceStore,
    key_id: bytes,
    origin: Origin,
    *,
    account_id: bytes | None = None,
    live_mode: bool | None = None,
    manager: ApiKey | None = None,
    sleep: Sleep = asyncio.sleep,
) -> ApiKey:
    """Revokes the key; returns once no devreg process can accept it or a token made from
    it. Revoking a revoked key changes nothing, and waits all the same: a second call made
    while the first is still waiting must not return sooner than it."""
    await find_key_of(store, key_id, account_id, live_mode, manager)
    revoked = await store.revoke_api_key(key_id, now_us(), origin)
    if revoked is None:
        raise NotFound(f"API key with id {render_uuid(key_id)} does not exist")
    await until_everywhere(sleep)
    return revoked[1]


async def rotate_key(
    store: DeviceStore,
    key_id: bytes,
    origin: Origin,
    *,
    overlap_hours: float = DEFAULT_OVERLAP_HOURS,
    account_id: bytes | None = None,
    live_mode: bool | None = None,
    creator: ApiKey | None = None,
    sleep: Sleep = asyncio.sleep,
) -> tuple[str, ApiKey, ApiKey]:
    """A successor like the old key (name, mode, scope, divisions, lifetime), and the old one set to
    expire after `overlap_hours` (0: revoked now), in one transaction. No task has to
    remember to revoke it later: every process compares the expiry with its clock. A key is
    rotated once (its successor is rotated next); the successor of a key rotated by another
    key (`creator`, over HTTP) never outlives that key."""
    if not 0 <= overlap_hours <= MAX_OVERLAP_HOURS:
        raise InvalidInput(
            f"overlap_hours must be from 0 to {MAX_OVERLAP_HOURS:g}", "overlap_hours"
        )
    old = await find_key_of(store, key_id, account_id, live_mode, creator)
    now = now_us()
    lifetime = None if old.expires_at is None else old.expires_at - old.created_at
    expires_at = None if lifetime is None else now + lifetime
    if creator is not None and creator.expires_at is not None:
        expires_at = min(expires_at or creator.expires_at, creator.expires_at)
    _check_no_more_rights(creator, old.live_mode, old.scope, expires_at, old.divisions)
    secret, new = new_api_key(
        old.account_id, old.live_mode, now, name=old.name, scope=old.scope,
        expires_at=expires_at, rotated_from=old.id, divisions=old.divisions,
    )  # fmt: skip
    overlap = round(overlap_hours * HOUR_US)
    try:
        rotated = await store.rotate_api_key(
            old.id, new, None if overlap == 0 else now + overlap, now, MAX_USABLE_KEYS, origin
        )
    except NotRotatable as refused:
        raise Conflict(
            f"API key {render_uuid(key_id)} is {refused.why}: only an active key without a"
            " successor can be rotated (rotate its successor)",
            "key_not_rotatable",
        ) from None
    except OverLimit:
        raise _over_the_cap() from None
    await until_everywhere(sleep)  # a shorter expiry refuses cached states too
    return secret, new, rotated


def _over_the_cap() -> QuotaExceeded:
    return QuotaExceeded(
        f"This account may hold at most {MAX_USABLE_KEYS} usable API keys: revoke some first",
        "MAX_USABLE_KEYS",
    )
