"""Bearer tokens: HS256 JWTs signed with a secret made at init (mode 0600 in the data dir).

The algorithm list is pinned, so neither `none` nor an asymmetric-key confusion is accepted,
every claim we rely on is required, the header's `kid` must name the signing key, a token
may live no longer than the TTL (`exp - iat`). The key it was made from is checked on every
use (auth/access_gate.py): revoked, expired, or of a disabled account, it is refused.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from pathlib import Path

import jwt

from devreg.core.errors import Unauthenticated
from devreg.core.ids import render_uuid
from devreg.core.records import Actor, ActorKind, ApiKey, Caller
from devreg.core.versions import DEFAULT_VERSION, SERVED

TOKEN_TTL_SECONDS = 3600
ALGORITHM = "HS256"
ISSUER = "devreg"
AUDIENCE = "devreg:dialect-f"
SIGNING_KEY_FILE = "jwt-signing.key"
MAX_TOKEN_LENGTH = 2048
VERIFIED_CACHE_SIZE = 4096


def signing_key_id(key: bytes) -> str:
    """The `kid` naming a signing key in the tokens' header: a hash, never the key."""
    return hashlib.sha256(b"devreg-jwt-kid\0" + key).hexdigest()[:16]


def load_or_create_signing_key(data_dir: Path) -> bytes:
    """The signing secret, created on first use with mode 0600 and never rewritten."""
    return load_or_create_secret(data_dir, SIGNING_KEY_FILE)


def load_or_create_secret(data_dir: Path, name: str) -> bytes:
    """A 256-bit secret kept in the data directory as hex (mode 0600), made on first use
    and never rewritten: the signing key here, the TOTP key (auth/totp.py).

    The key is written and fsynced under a private temporary name, then hard-linked into
    place: the link either creates the complete file or fails because another process
    linked its own first, so no caller ever reads a half-written (or empty) key."""
    path = data_dir / name
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    temporary = data_dir / f".{name}.{os.getpid()}.{secrets.token_hex(8)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:  # another process made it first: use theirs
            pass
        else:
            directory = os.open(data_dir, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
    finally:
        temporary.unlink()
    return bytes.fromhex(path.read_text().strip())


class TokenSigner:
    """Issues and verifies tokens.

    A client sends the same token on every request for up to an hour, so a token whose
    signature and claims were checked once is remembered (exactly that string, with its
    `exp`) in a bounded in-process map: a later request pays a dict lookup and an expiry
    check instead of base64, JSON and HMAC again. Only tokens that passed every check are
    remembered; a refused one is checked in full each time."""

    def __init__(
        self, key: bytes, ttl: int = TOKEN_TTL_SECONDS, cache_size: int = VERIFIED_CACHE_SIZE
    ) -> None:
        self._key = key
        self.key_id = signing_key_id(key)
        self.ttl = ttl
        self._cache_size = cache_size
        self._verified: dict[str, tuple[Caller, int]] = {}

    def lifetime(self, api_key: ApiKey, now_seconds: int) -> int:
        """The TTL, or less for a key that expires sooner: a token never outlives its key
        (the key is checked on every use anyway; this tells the client when to log in)."""
        if api_key.expires_at is None:
            return self.ttl
        return max(0, min(self.ttl, api_key.expires_at // 1_000_000 - now_seconds))

    def issue(self, api_key: ApiKey, now_seconds: int, api_version: str = DEFAULT_VERSION) -> str:
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "acc_" + api_key.account_id.hex(),
            # Flatpeak's example token names the account twice and has nbf: clients that
            # decode it to read the account find it where Flatpeak puts it
            "account_id": "acc_" + api_key.account_id.hex(),
            "kid": api_key.id.hex(),
            "live_mode": api_key.live_mode,
            # The account's default version at login: no look-up per request; a new default
            # (devreg account set-version) holds from the next login, within the TTL.
            "api_version": api_version,
            "iat": now_seconds,
            "nbf": now_seconds,
            "exp": now_seconds + self.lifetime(api_key, now_seconds),
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.key_id})

    def verify(self, token: str) -> Caller:
        remembered = self._verified.get(token)
        if remembered is not None:
            caller, expires = remembered
            if time.time() < expires:  # PyJWT's rule: expired once now >= exp
                return caller
            del self._verified[token]
        caller, expires = self._verify_in_full(token)
        if len(self._verified) >= self._cache_size:
            # Oldest first (dicts keep insertion order): a cheap bound, not an LRU.
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (caller, expires)
        return caller

    def _verify_in_full(self, token: str) -> tuple[Caller, int]:
        if len(token) > MAX_TOKEN_LENGTH:
            raise Unauthenticated("Bearer token is too long")
        try:
            decoded = jwt.decode_complete(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                # nbf is iat in every token we make: checking it again would only refuse
                # a token by the clock skew between two hosts
                options={
                    "require": ["exp", "iat", "sub", "kid", "iss", "aud"],
                    "verify_nbf": False,
                },
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("Bearer token has expired: log in again") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated("Bearer token is not valid") from None
        if decoded["header"].get("kid") != self.key_id:  # absent, or another key's
            raise Unauthenticated("Bearer token is not signed with the current key: log in again")
        claims = decoded["payload"]
        if int(claims["exp"]) - int(claims["iat"]) > self.ttl:  # PyJWT checked int() works
            raise Unauthenticated(f"Bearer token lives longer than {self.ttl} s: log in again")
        sub, kid, live_mode = claims.get("sub"), claims.get("kid"), claims.get("live_mode")
        if (
            not isinstance(sub, str)
            or not sub.startswith("acc_")
            or not isinstance(kid, str)
            or not isinstance(live_mode, bool)
        ):
            raise Unauthenticated("Bearer token is not valid")
        try:
            account_id = bytes.fromhex(sub[4:])
            key_id = bytes.fromhex(kid)
        except ValueError:
            raise Unauthenticated("Bearer token is not valid") from None
        if len(key_id) != 16:
            raise Unauthenticated("Bearer token is not valid")
        version = claims.get("api_version", DEFAULT_VERSION)  # tokens made before versions
        if version not in SERVED:
            raise Unauthenticated("Bearer token is not valid")
        caller = Caller(
            account_id=account_id,
            live_mode=live_mode,
            credential_id="key:" + kid,
            # The key the token was made from; the request's id is set per request.
            actor=Actor(ActorKind.BEARER_TOKEN, render_uuid(key_id)),
            request_id="",
            api_version=version,
            key_id=key_id,
        )
        return caller, int(claims["exp"])


def parse_bearer(header: str | None) -> str:
    if not header:
        raise Unauthenticated("Missing Authorization header: use Bearer <token> from GET /login")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization must use the Bearer scheme with a token from /login")
    return token.strip()
