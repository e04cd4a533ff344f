"""Operators: the people who sign in to the console (issue 15 part 3). Their use cases,
tested directly on both stores; the console (the next issue) and `devreg user …`
(cli/users.py) call them.

- Passwords: 12 to 1024 characters, hashed with argon2-cffi's PasswordHasher (Argon2id, its
  defaults), never logged, never in the change log (its records hold when, not what).
- Sign-in: email + password (+ a TOTP code once enrolled) → a session token, shown once;
  only its SHA-256 is stored. Argon2 runs on every attempt, against a dummy hash for an
  unknown email, and every refusal says the same thing, so neither the answer nor its time
  tells which emails exist. Failures are limited per email (known or not:
  `FAILURE_LIMIT` in `FAILURE_WINDOW_US`, kept in the database) and per client address
  (a rate limiter's bucket, as auth/failures.py does for API keys).
- Sessions: refused once revoked, idle for `IDLE_TIMEOUT_US`, past their absolute end
  (`ABSOLUTE_TIMEOUT_US` after sign-in) or their operator disabled; looked up on every
  use, so a revocation holds at once. Disabling an operator or setting its password ends
  every session in the same transaction.
- TOTP (auth/totp.py): enrolled by the operator (a secret shown once as an otpauth:// URI,
  confirmed by a first code), each step accepted once; the secret is stored encrypted.
- Permissions: core/roles.py's table, checked here when an operator (`by`) acts; `by`
  None is the command line, whose user holds the data directory anyway.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import secrets
import unicodedata
from collections.abc import Callable
from typing import Protocol

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag

from devreg.auth import totp
from devreg.core.clock import now_us
from devreg.core.errors import Conflict, InvalidInput, NotFound, RateLimited, Unauthenticated
from devreg.core.ids import new_id, parse_uuid, render_uuid
from devreg.core.operator_store import Operator, OperatorSession, OperatorStore
from devreg.core.records import Actor, ActorKind, Origin
from devreg.core.roles import Permission, Role, check_permission
from devreg.core.store import DuplicateValue, MissingReference

MINUTE_US = 60 * 1_000_000
IDLE_TIMEOUT_US = 30 * MINUTE_US
ABSOLUTE_TIMEOUT_US = 12 * 60 * MINUTE_US
log = logging.getLogger("devreg.operators")
FAILURE_LIMIT = 5  # failed sign-ins per email and client address ...
EMAIL_FAILURE_LIMIT = 50  # ... and per email from anywhere ...
FAILURE_WINDOW_US = 15 * MINUTE_US  # ... in this long
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # Argon2 hashes any length; a bound keeps a request's cost bounded
MAX_EMAIL = 254
TOKEN_PREFIX = "dvs_"  # noqa: S105 (a prefix, not a secret)
SESSION_RANDOM_BYTES = 32  # 256 random bits in a session token (a length, not a secret)
REFUSED = "Wrong email, password or code"
ADDRESS_BUCKET = "operator-login-failures:"

_hasher = PasswordHasher()
_dummy_hash: str | None = None


class FailureLimiter(Protocol):
    """auth/rate_limit.py's RateLimiter, as far as sign-in uses it (per-address buckets)."""

    async def check(self, credential: str, cost: int = 1) -> None: ...


class NewSession(msgspec.Struct, frozen=True):
    token: str  # shown once; only its hash is stored
    session: OperatorSession
    operator: Operator


class TotpEnrolment(msgspec.Struct, frozen=True):
    uri: str  # otpauth://…: the secret, shown once


def normalise_email(email: str) -> str:
    """NFC, then casefolded, spaces around removed: how emails are stored and compared."""
    return unicodedata.normalize("NFC", email).strip().casefold()


def check_email(email: str) -> str:
    normal = normalise_email(email)
    local, at, domain = normal.rpartition("@")
    if (
        not at
        or not local
        or "." not in domain.strip(".")
        or len(normal) > MAX_EMAIL
        or any(ch.isspace() or unicodedata.category(ch)[0] == "C" for ch in normal)
    ):
        raise InvalidInput("email must be an address like name@example.com", "email")
    return normal


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD} characters", "password")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"password must be at most {MAX_PASSWORD} characters", "password")


def hash_password(password: str) -> str:
    check_password(password)
    return _hasher.hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _dummy() -> str:
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash(secrets.token_urlsafe(24))
    return _dummy_hash


def _email_key(normal_email: str, address: str | None) -> bytes:
    """The failure counter's key: an email, alone or from one client address."""
    where = b"" if address is None else b"\0" + address.encode("utf-8", "replace")
    return hashlib.sha256(b"devreg-operator-email\0" + normal_email.encode() + where).digest()


def _readable(text: str) -> bool:
    """Text that can be a stored email or password: UTF-8 (no lone surrogates), no NUL."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\0" not in text


def token_hash(token: str) -> bytes | None:
    """The stored hash of a session token; None for what is not one."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    body = token.removeprefix(TOKEN_PREFIX)
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != SESSION_RANDOM_BYTES:
        return None
    return hashlib.sha256(raw).digest()


def operator_origin(operator: Operator, request_id: str) -> Origin:
    """A change made by a signed-in operator: logged with the operator's id."""
    return Origin(Actor(ActorKind.OPERATOR, render_uuid(operator.id)), request_id)


class Operators:
    """The use cases, over an OperatorStore, the key that seals TOTP secrets, a clock (µs)
    and, optionally, the per-address limiter of failed sign-ins."""

    def __init__(
        self,
        store: OperatorStore,
        box: totp.SecretBox,
        clock: Callable[[], int] = now_us,
        limiter: FailureLimiter | None = None,
    ) -> None:
        self.store = store
        self.box = box
        self.clock = clock
        self.limiter = limiter

    # --- users

    async def find(self, email_or_id: str) -> Operator:
        """By UUID, else by email; NotFound."""
        operator_id = parse_uuid(email_or_id.strip())
        found = None if operator_id is None else await self.store.operator(operator_id)
        if found is None:
            found = await self.store.operator_by_email(normalise_email(email_or_id))
        if found is None:
            raise NotFound("No such user")
        return found

    async def create(
        self,
        email: str,
        role: Role | str,
        account_id: bytes | None,
        password: str,
        origin: Origin,
        by: Operator | None = None,
    ) -> Operator:
        try:
            role = Role(role)
        except ValueError:
            raise InvalidInput("role must be admin, operator or viewer", "role") from None
        if account_id is None and role is not Role.ADMIN:
            raise InvalidInput(
                "only an admin may have no account (a platform administrator)", "account"
            )
        if by is not None:
            check_permission(by, Permission.USER_MANAGE, account_id)
        normal = check_email(email)
        now = self.clock()
        operator = Operator(
            id=new_id(), email=normal, role=role, account_id=account_id,
            password_hash=await asyncio.to_thread(hash_password, password),
            password_changed_at=now, totp_secret=None, totp_enabled_at=None,
            totp_last_step=None, disabled_at=None, created_at=now,
        )  # fmt: skip
        try:
            await self.store.insert_operator(operator, origin)
        except DuplicateValue:
            raise Conflict("A user with this email exists", "duplicate_email") from None
        except MissingReference:
            raise NotFound("No such account") from None
        return operator

    async def list_operators(self, by: Operator | None = None) -> list[Operator]:
        every = await self.store.operators()
        if by is None:
            return every
        check_permission(by, Permission.USER_MANAGE, by.account_id)
        return [op for op in every if by.account_id is None or op.account_id == by.account_id]

    async def _managed(self, operator_id: bytes, by: Operator | None) -> Operator:
        target = await self.store.operator(operator_id)
        if target is None:
            raise NotFound("No such user")
        if by is not None:
            check_permission(by, Permission.USER_MANAGE, target.account_id)
        return target

    async def set_disabled(
        self, operator_id: bytes, disabled: bool, origin: Origin, by: Operator | None = None
    ) -> Operator:
        """Disable (every session ended in the same transaction) or enable again."""
        await self._managed(operator_id, by)
        done = await self.store.set_operator_disabled(
            operator_id, self.clock() if disabled else None, origin
        )
        if done is None:
            raise NotFound("No such user")
        return done[1]

    async def set_password(
        self, operator_id: bytes, password: str, origin: Origin, by: Operator | None = None
    ) -> Operator:
        """A new password; every session of the user ended in the same transaction."""
        await self._managed(operator_id, by)
        hashed = await asyncio.to_thread(hash_password, password)
        done = await self.store.set_operator_password(operator_id, hashed, self.clock(), origin)
        if done is None:
            raise NotFound("No such user")
        return done

    # --- sign-in and sessions

    async def authenticate(
        self,
        email: str,
        password: str,
        code: str | None = None,
        address: str | None = None,
        request_id: str = "",
    ) -> NewSession:
        """A new session, or Unauthenticated (always REFUSED) / RateLimited. The sign-in is
        in the change log (`operator_session.create`), by the operator, with `request_id`.

        Each attempt is counted before its password is checked (a failure reserved, and
        cleared on success), so requests sent at once cannot all be tried. The hard limit
        is per email and client address (FAILURE_LIMIT), so nobody locks a user out from
        elsewhere; a looser one per email alone (EMAIL_FAILURE_LIMIT) bounds a guesser with
        many addresses."""
        bucket = ADDRESS_BUCKET + (address or "-")
        if self.limiter is not None:
            await self.limiter.check(bucket)  # every attempt costs, before any work
        readable = _readable(email) and _readable(password)
        normal = normalise_email(email) if readable else ""
        here, anywhere = _email_key(normal, address or "-"), _email_key(normal, None)
        now = self.clock()
        since = now - FAILURE_WINDOW_US
        await self.store.add_login_failure(here, now, since)
        await self.store.add_login_failure(anywhere, now, since)
        if (
            await self.store.count_login_failures(here, since) > FAILURE_LIMIT
            or await self.store.count_login_failures(anywhere, since) > EMAIL_FAILURE_LIMIT
        ):
            raise RateLimited(FAILURE_WINDOW_US // 1_000_000)
        operator = (
            await self.store.operator_by_email(normal)
            if readable and 0 < len(normal) <= MAX_EMAIL
            else None
        )
        candidate = password[: MAX_PASSWORD + 1] if readable else ""
        # Always an Argon2 verification: an unknown email costs what a known one does.
        matched = await asyncio.to_thread(
            _verify, operator.password_hash if operator else _dummy(), candidate
        )
        if (
            operator is None
            or not matched
            or operator.disabled_at is not None
            or await self._account_disabled(operator)
            or not await self._second_factor(operator, code, now)
        ):
            raise Unauthenticated(REFUSED)  # the failures reserved above stay
        await self.store.clear_login_failures(here)
        await self.store.clear_login_failures(anywhere)
        return await self._open_session(operator, now, address, request_id)

    async def _account_disabled(self, operator: Operator) -> bool:
        """An account's operators are refused while it is disabled, like its keys."""
        if operator.account_id is None:
            return False
        return await self.store.account_disabled(operator.account_id)

    async def _second_factor(self, operator: Operator, code: str | None, now: int) -> bool:
        if operator.totp_enabled_at is None or operator.totp_secret is None:
            return True
        if not code:
            return False
        try:
            secret = self.box.open(operator.totp_secret, operator.id)
        except InvalidTag:  # totp.key lost or replaced: the factor cannot be checked
            log.error("operator %s: TOTP secret cannot be opened with totp.key", operator.id.hex())
            return False
        step = totp.matching_step(secret, code, now / 1_000_000)
        if step is None:
            return False
        return await self.store.use_totp_step(operator.id, step)  # each step once

    async def _open_session(
        self, operator: Operator, now: int, address: str | None, request_id: str
    ) -> NewSession:
        raw = secrets.token_bytes(SESSION_RANDOM_BYTES)
        token = TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")
        session = OperatorSession(
            id=new_id(), token_hash=hashlib.sha256(raw).digest(), operator_id=operator.id,
            created_at=now, last_seen_at=now, expires_at=now + ABSOLUTE_TIMEOUT_US,
            revoked_at=None, address=address,
        )  # fmt: skip
        await self.store.insert_session(
            session, operator, operator_origin(operator, request_id or "signin_" + new_id().hex())
        )
        return NewSession(token, session, operator)

    async def session(self, token: str) -> tuple[OperatorSession, Operator]:
        """The session a token names and its operator, if it may be used now (its
        `last_seen` moved); else Unauthenticated."""
        hashed = token_hash(token)
        found = None if hashed is None else await self.store.session_by_token_hash(hashed)
        now = self.clock()
        if found is None:
            raise Unauthenticated("Not signed in")
        session, operator = found
        if (
            session.revoked_at is not None
            or now >= session.expires_at
            or now - session.last_seen_at >= IDLE_TIMEOUT_US
            or operator.disabled_at is not None
            # opened with a password changed since (a sign-in racing the change)
            or session.created_at < operator.password_changed_at
            or await self._account_disabled(operator)
        ):
            raise Unauthenticated("The session has ended: sign in again")
        await self.store.touch_session(session.id, now)
        return msgspec.structs.replace(session, last_seen_at=now), operator

    async def sessions(
        self, operator_id: bytes, by: Operator | None = None
    ) -> list[OperatorSession]:
        """A user's sessions, newest last (ended ones too)."""
        if by is not None and by.id != operator_id:
            await self._managed(operator_id, by)
        return await self.store.sessions_of(operator_id)

    async def revoke_session(
        self, session_id: bytes, origin: Origin, by: Operator | None = None
    ) -> OperatorSession:
        """Ended at once (idempotent); an operator may end its own, a manager its users'."""
        found = await self.store.session(session_id)
        if found is None:
            raise NotFound("No such session")
        if by is not None and found.operator_id != by.id:
            await self._managed(found.operator_id, by)
        done = await self.store.revoke_session(session_id, self.clock(), origin)
        if done is None:
            raise NotFound("No such session")
        return done[1]

    # --- TOTP, enrolled by the operator itself

    async def begin_totp(self, operator: Operator) -> TotpEnrolment:
        """A new secret (the URI shows it once), not yet required: `confirm_totp` with a
        first code turns it on. Refused while one is on (remove it first), as the store
        holds it now, not as the caller last read it."""
        current = await self.store.operator(operator.id)
        if current is None:
            raise NotFound("No such user")
        if current.totp_enabled_at is not None:
            raise Conflict("A TOTP second factor is enrolled already", "totp_enrolled")
        secret = totp.new_secret()
        sealed = self.box.seal(secret, operator.id)
        if await self.store.set_operator_totp(operator.id, sealed, None, None, None) is None:
            raise NotFound("No such user")
        return TotpEnrolment(totp.otpauth_uri(secret, operator.email))

    async def confirm_totp(self, operator_id: bytes, code: str, origin: Origin) -> Operator:
        operator = await self.store.operator(operator_id)
        if operator is None:
            raise NotFound("No such user")
        if operator.totp_secret is None or operator.totp_enabled_at is not None:
            raise Conflict("No TOTP enrolment is waiting for its first code", "totp_state")
        secret = self.box.open(operator.totp_secret, operator.id)
        now = self.clock()
        step = totp.matching_step(secret, code, now / 1_000_000)
        if step is None:
            raise InvalidInput("The code does not match: try the next one", "code")
        done = await self.store.set_operator_totp(
            operator.id, operator.totp_secret, now, step, origin
        )
        assert done is not None
        return done

    async def remove_totp(
        self,
        operator_id: bytes,
        origin: Origin,
        by: Operator | None = None,
        code: str | None = None,
    ) -> Operator:
        """By an administrator of the user (or the CLI), or by the user with a current code:
        a session alone must not switch the second factor off."""
        if by is not None and by.id != operator_id:
            await self._managed(operator_id, by)
        elif by is not None:
            current = await self.store.operator(operator_id)
            if current is None:
                raise NotFound("No such user")
            if not await self._second_factor(current, code, self.clock()):
                raise Unauthenticated("A current TOTP code is needed to remove the second factor")
        done = await self.store.set_operator_totp(operator_id, None, None, None, origin)
        if done is None:
            raise NotFound("No such user")
        return done
