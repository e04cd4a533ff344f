"""Operators (console users) and their sessions as the core sees them, and the store
interface their use cases need (core/operators.py). Implemented by storage/operators.py;
every write there lands in the change log with its Origin, never with a secret."""

from __future__ import annotations

from typing import Protocol

import msgspec

from devreg.core.records import Origin
from devreg.core.roles import Role


class Operator(msgspec.Struct, frozen=True, kw_only=True):
    """`account_id` None: a platform administrator (role admin, every account). The
    password is held as its Argon2id PHC string only; `totp_secret` is encrypted."""

    id: bytes
    email: str  # NFC + casefolded
    role: Role
    account_id: bytes | None
    password_hash: str
    password_changed_at: int
    totp_secret: bytes | None  # sealed with the data directory's totp.key
    totp_enabled_at: int | None  # None with a secret: enrolment not yet confirmed
    totp_last_step: int | None  # the last TOTP step accepted: each is used once
    disabled_at: int | None
    created_at: int

    @property
    def platform_admin(self) -> bool:
        return self.account_id is None and self.role is Role.ADMIN


class OperatorSession(msgspec.Struct, frozen=True, kw_only=True):
    """A signed-in session. Only the SHA-256 of its token is stored; `id` names it."""

    id: bytes
    token_hash: bytes
    operator_id: bytes
    created_at: int
    last_seen_at: int
    expires_at: int  # absolute: the session ends then whatever its use
    revoked_at: int | None
    address: str | None


class OperatorStore(Protocol):
    # --- operators (each write logged with `origin`)

    async def insert_operator(self, operator: Operator, origin: Origin) -> None:
        """DuplicateValue("email") when the email is taken."""

    async def operator(self, operator_id: bytes) -> Operator | None: ...

    async def operator_by_email(self, email: str) -> Operator | None: ...

    async def operators(self) -> list[Operator]: ...

    async def set_operator_disabled(
        self, operator_id: bytes, at: int | None, origin: Origin
    ) -> tuple[bool, Operator] | None:
        """(changed, operator); disabling revokes every open session in the same
        transaction. None: no such operator."""

    async def set_operator_password(
        self, operator_id: bytes, password_hash: str, at: int, origin: Origin
    ) -> Operator | None:
        """The new hash; every open session revoked in the same transaction."""

    async def set_operator_totp(
        self,
        operator_id: bytes,
        secret: bytes | None,
        enabled_at: int | None,
        last_step: int | None,
        origin: Origin | None,
    ) -> Operator | None:
        """The TOTP columns as given. `origin` None: not a change worth logging (a secret
        proposed, not yet confirmed)."""

    async def use_totp_step(self, operator_id: bytes, step: int) -> bool:
        """Record `step` as used; False if it (or a later one) was used already."""

    # --- sessions (a sign-in is in the change log; a session's use is not a change)

    async def insert_session(
        self, session: OperatorSession, operator: Operator, origin: Origin
    ) -> None: ...

    async def session_by_token_hash(
        self, token_hash: bytes
    ) -> tuple[OperatorSession, Operator] | None: ...

    async def session(self, session_id: bytes) -> OperatorSession | None: ...

    async def touch_session(self, session_id: bytes, at: int) -> None: ...

    async def sessions_of(self, operator_id: bytes) -> list[OperatorSession]: ...

    async def revoke_session(
        self, session_id: bytes, at: int, origin: Origin
    ) -> tuple[bool, OperatorSession] | None: ...

    # --- failed sign-ins, per email key

    async def account_disabled(self, account_id: bytes) -> bool:
        """Whether the account is disabled (or gone): its operators are refused meanwhile."""
        ...

    async def count_login_failures(self, email_key: bytes, since: int) -> int:
        """Failures recorded after `since`."""

    async def add_login_failure(self, email_key: bytes, at: int, older_than: int) -> None:
        """Record a failure and forget this key's failures at or before `older_than`."""

    async def clear_login_failures(self, email_key: bytes) -> None: ...
