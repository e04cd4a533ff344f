"""API keys at the door: the `Basic account_id:api_key` header of dialect F's `/login`
and the secret of dialect D's `x-api-key`, each found by its hash in one indexed read
(core/api_keys.py makes keys and says when one may be used)."""

from __future__ import annotations

import base64
import hmac

from devreg.core.api_keys import (
    LIVE_PREFIX,
    TEST_PREFIX,
    hash_key,
    new_api_key,
    usable_key,
)
from devreg.core.clock import now_us
from devreg.core.errors import Unauthenticated
from devreg.core.ids import parse_prefixed
from devreg.core.records import ApiKey
from devreg.core.store import DeviceStore

__all__ = ["LIVE_PREFIX", "TEST_PREFIX", "authenticate_key", "find_key", "hash_key", "new_api_key"]

MAX_BASIC_HEADER = 512
MAX_KEY_LENGTH = 200


def parse_basic(header: str | None) -> tuple[str, str]:
    """`Basic base64(user:password)` -> (user, password), or Unauthenticated naming the fault."""
    if not header:
        raise Unauthenticated("Missing Authorization header: use HTTP Basic account_id:api_key")
    if len(header) > MAX_BASIC_HEADER:
        raise Unauthenticated("Authorization header is too long")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise Unauthenticated("Authorization must use the Basic scheme with account_id:api_key")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII text in the header
        raise Unauthenticated("Authorization Basic credentials are not valid base64") from None
    user, sep, password = decoded.partition(":")
    if not sep or not user or not password:
        raise Unauthenticated("Authorization Basic credentials must be account_id:api_key")
    return user, password


async def find_key(
    store: DeviceStore, secret: str, refusal: str, account_id: bytes | None = None
) -> ApiKey:
    """The stored key for `secret`, if it may be used now (core/api_keys.py:usable_key):
    Unauthenticated(`refusal`) for an unknown, revoked or expired key (or one of another
    account than `account_id`, when given), AccountDisabled for one of a disabled account.
    One statement, so always current."""
    if len(secret) > MAX_KEY_LENGTH:  # no key is this long: not worth hashing
        raise Unauthenticated(refusal)
    standing = await store.key_standing_by_hash(hash_key(secret))
    if account_id is not None and (
        standing is None or not hmac.compare_digest(standing.key.account_id, account_id)
    ):
        raise Unauthenticated(refusal)
    return usable_key(standing, now_us(), refusal)


async def authenticate_key(store: DeviceStore, account_id_text: str, secret: str) -> ApiKey:
    """The stored key for `secret`, if it may be used and belongs to the named account."""
    if not secret.startswith((LIVE_PREFIX, TEST_PREFIX)):
        raise Unauthenticated("Bad credentials")
    # A malformed account id still costs the look-up: no timing tells the two apart.
    account_id = parse_prefixed("acc", account_id_text) or b"\0" * 16
    return await find_key(store, secret, "Bad credentials", account_id)
