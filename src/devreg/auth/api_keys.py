"""API keys: `sk_live_...` / `sk_test_...` plus 256 random bits. Only the SHA-256 is stored.

A fast hash is right here (unlike for passwords): the secret is 256 random bits, so there is
nothing to brute-force, and the lookup by hash stays one indexed read per login.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from devreg.core.errors import Unauthenticated
from devreg.core.ids import new_id, parse_prefixed
from devreg.core.records import ApiKey
from devreg.core.store import DeviceStore

LIVE_PREFIX = "sk_live_"
TEST_PREFIX = "sk_test_"
MAX_BASIC_HEADER = 512
MAX_KEY_LENGTH = 200


def hash_key(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def new_api_key(account_id: bytes, live_mode: bool, now: int) -> tuple[str, ApiKey]:
    """A fresh key: the secret (shown once) and the record to store."""
    prefix = LIVE_PREFIX if live_mode else TEST_PREFIX
    secret = prefix + secrets.token_urlsafe(32)
    record = ApiKey(
        id=new_id(),
        account_id=account_id,
        live_mode=live_mode,
        key_hash=hash_key(secret),
        prefix=secret[: len(prefix) + 4],
        created_at=now,
    )
    return secret, record


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


async def find_key(store: DeviceStore, secret: str, refusal: str) -> ApiKey:
    """The stored, unrevoked key for `secret`; Unauthenticated(`refusal`) otherwise."""
    if len(secret) > MAX_KEY_LENGTH:  # no key is this long: not worth hashing
        raise Unauthenticated(refusal)
    key = await store.find_api_key(hash_key(secret))
    if key is None or key.revoked_at is not None:
        raise Unauthenticated(refusal)
    return key


async def authenticate_key(store: DeviceStore, account_id_text: str, secret: str) -> ApiKey:
    """The stored key for `secret`, if it is live and belongs to the named account."""
    if not secret.startswith((LIVE_PREFIX, TEST_PREFIX)):
        raise Unauthenticated("Bad credentials")
    key = await find_key(store, secret, "Bad credentials")
    account_id = parse_prefixed("acc", account_id_text)
    if account_id is None or not hmac.compare_digest(key.account_id, account_id):
        raise Unauthenticated("Bad credentials")
    return key
