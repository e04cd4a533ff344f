"""OperatorStore (core/operator_store.py) on SqlDeviceStore's drivers: the operator SQL,
written once for SQLite and PostgreSQL (migration 0009). Every change of record goes
through the store's one `_logged`, so it lands in the change log with its Origin; the
records logged never hold a hash, a TOTP secret or a session token."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from devreg.changelog import operator_records as records
from devreg.changelog.entries import Action, Change
from devreg.core.operator_store import Operator, OperatorSession
from devreg.core.records import Origin
from devreg.core.roles import Role
from devreg.storage.base import SqlDeviceStore, SqlRunner

OPERATOR_COLUMNS = (
    "id, email, role, account_id, password_hash, password_changed_at, totp_secret,"
    " totp_enabled_at, totp_last_step, disabled_at, created_at"
)
SESSION_COLUMNS = (
    "id, token_hash, operator_id, created_at, last_seen_at, expires_at, revoked_at, address"
)
INSERT_OPERATOR = (
    f"INSERT INTO operators ({OPERATOR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_OPERATOR = f"SELECT {OPERATOR_COLUMNS} FROM operators WHERE id = ?"
LOCK_OPERATOR = SELECT_OPERATOR + " FOR NO KEY UPDATE"
SELECT_OPERATOR_BY_EMAIL = f"SELECT {OPERATOR_COLUMNS} FROM operators WHERE email = ?"
SELECT_OPERATORS = f"SELECT {OPERATOR_COLUMNS} FROM operators ORDER BY created_at, id"
SET_DISABLED = "UPDATE operators SET disabled_at = ? WHERE id = ?"
SET_HASH = "UPDATE operators SET password_hash = ?, password_changed_at = ? WHERE id = ?"
SET_TOTP = (
    "UPDATE operators SET totp_secret = ?, totp_enabled_at = ?, totp_last_step = ? WHERE id = ?"
)
USE_TOTP_STEP = (
    "UPDATE operators SET totp_last_step = ? WHERE id = ?"
    " AND (totp_last_step IS NULL OR totp_last_step < ?) RETURNING id"
)
INSERT_SESSION = (
    f"INSERT INTO operator_sessions ({SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_SESSION_BY_HASH = f"SELECT {SESSION_COLUMNS} FROM operator_sessions WHERE token_hash = ?"
SELECT_SESSION = f"SELECT {SESSION_COLUMNS} FROM operator_sessions WHERE id = ?"
LOCK_SESSION = SELECT_SESSION + " FOR UPDATE"
SELECT_SESSIONS_OF = (
    f"SELECT {SESSION_COLUMNS} FROM operator_sessions WHERE operator_id = ? ORDER BY created_at, id"
)
TOUCH_SESSION = "UPDATE operator_sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?"
REVOKE_SESSION = "UPDATE operator_sessions SET revoked_at = ? WHERE id = ?"
REVOKE_OPEN_SESSIONS = (
    f"UPDATE operator_sessions SET revoked_at = ? WHERE operator_id = ? AND revoked_at IS NULL"
    f" AND expires_at > ? RETURNING {SESSION_COLUMNS}"
)
COUNT_FAILURES = "SELECT count(*) FROM operator_login_failures WHERE email_key = ? AND at > ?"
INSERT_FAILURE = "INSERT INTO operator_login_failures (email_key, at) VALUES (?, ?)"
FORGET_FAILURES = "DELETE FROM operator_login_failures WHERE email_key = ? AND at <= ?"
CLEAR_FAILURES = "DELETE FROM operator_login_failures WHERE email_key = ?"


def _blob(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def operator_row(op: Operator) -> tuple[Any, ...]:
    return (
        op.id, op.email, op.role.value, op.account_id, op.password_hash,
        op.password_changed_at, op.totp_secret, op.totp_enabled_at, op.totp_last_step,
        op.disabled_at, op.created_at,
    )  # fmt: skip


def operator_from_row(row: Sequence[Any]) -> Operator:
    return Operator(
        id=bytes(row[0]), email=row[1], role=Role(row[2]), account_id=_blob(row[3]),
        password_hash=row[4], password_changed_at=int(row[5]), totp_secret=_blob(row[6]),
        totp_enabled_at=row[7], totp_last_step=row[8], disabled_at=row[9],
        created_at=int(row[10]),
    )  # fmt: skip


def session_row(s: OperatorSession) -> tuple[Any, ...]:
    return (
        s.id, s.token_hash, s.operator_id, s.created_at, s.last_seen_at, s.expires_at,
        s.revoked_at, s.address,
    )  # fmt: skip


def session_from_row(row: Sequence[Any]) -> OperatorSession:
    return OperatorSession(
        id=bytes(row[0]), token_hash=bytes(row[1]), operator_id=bytes(row[2]),
        created_at=int(row[3]), last_seen_at=int(row[4]), expires_at=int(row[5]),
        revoked_at=row[6], address=row[7],
    )  # fmt: skip


class SqlOperatorStore:
    """The operator part of a SqlDeviceStore (the same connections and transactions)."""

    def __init__(self, store: SqlDeviceStore) -> None:
        self._store = store

    async def _one(self, statement: str, params: Sequence[Any]) -> Sequence[Any] | None:
        rows = await self._store.runner().rows(statement, params)
        return rows[0] if rows else None

    async def _locked(self, tx: SqlRunner, operator_id: bytes) -> Operator | None:
        read = SELECT_OPERATOR if self._store.serialized_writes else LOCK_OPERATOR
        rows = await tx.rows(read, (operator_id,))
        return operator_from_row(rows[0]) if rows else None

    async def insert_operator(self, operator: Operator, origin: Origin) -> None:
        async def work(tx: SqlRunner) -> tuple[None, list[Change]]:
            await tx.run(INSERT_OPERATOR, operator_row(operator))
            return None, [records.created_operator(operator)]

        await self._store._logged(origin, work)

    async def operator(self, operator_id: bytes) -> Operator | None:
        row = await self._one(SELECT_OPERATOR, (operator_id,))
        return None if row is None else operator_from_row(row)

    async def operator_by_email(self, email: str) -> Operator | None:
        row = await self._one(SELECT_OPERATOR_BY_EMAIL, (email,))
        return None if row is None else operator_from_row(row)

    async def operators(self) -> list[Operator]:
        rows = await self._store.runner().rows(SELECT_OPERATORS)
        return [operator_from_row(row) for row in rows]

    async def _end_sessions(self, tx: SqlRunner, operator: Operator, at: int) -> list[Change]:
        """Every open session of `operator` revoked, each in the log."""
        rows = await tx.rows(REVOKE_OPEN_SESSIONS, (at, operator.id, at))
        ended = [session_from_row(row) for row in rows]
        return [
            records.revoked_session(operator, msgspec.structs.replace(s, revoked_at=None), s)
            for s in ended
        ]

    async def set_operator_disabled(
        self, operator_id: bytes, at: int | None, origin: Origin
    ) -> tuple[bool, Operator] | None:
        async def work(tx: SqlRunner) -> tuple[tuple[bool, Operator] | None, list[Change]]:
            old = await self._locked(tx, operator_id)
            if old is None:
                return None, []
            if (old.disabled_at is None) == (at is None):
                return (False, old), []
            await tx.run(SET_DISABLED, (at, operator_id))
            new = msgspec.structs.replace(old, disabled_at=at)
            action = Action.OPERATOR_ENABLE if at is None else Action.OPERATOR_DISABLE
            logged = [records.changed_operator(action, old, new)]
            if at is not None:
                logged += await self._end_sessions(tx, new, at)
            return (True, new), logged

        return await self._store._logged(origin, work)

    async def set_operator_password(
        self, operator_id: bytes, password_hash: str, at: int, origin: Origin
    ) -> Operator | None:
        async def work(tx: SqlRunner) -> tuple[Operator | None, list[Change]]:
            old = await self._locked(tx, operator_id)
            if old is None:
                return None, []
            await tx.run(SET_HASH, (password_hash, at, operator_id))
            new = msgspec.structs.replace(old, password_hash=password_hash, password_changed_at=at)
            logged = [records.changed_operator(Action.OPERATOR_SET_PASSWORD, old, new)]
            return new, logged + await self._end_sessions(tx, new, at)

        return await self._store._logged(origin, work)

    async def set_operator_totp(
        self,
        operator_id: bytes,
        secret: bytes | None,
        enabled_at: int | None,
        last_step: int | None,
        origin: Origin | None,
    ) -> Operator | None:
        async def work(tx: SqlRunner) -> tuple[Operator | None, list[Change]]:
            old = await self._locked(tx, operator_id)
            if old is None:
                return None, []
            await tx.run(SET_TOTP, (secret, enabled_at, last_step, operator_id))
            new = msgspec.structs.replace(
                old, totp_secret=secret, totp_enabled_at=enabled_at, totp_last_step=last_step
            )
            if origin is None or (old.totp_enabled_at is None) == (enabled_at is None):
                return new, []
            action = Action.OPERATOR_TOTP_REMOVE if enabled_at is None else (
                Action.OPERATOR_TOTP_ENROLL
            )  # fmt: skip
            return new, [records.changed_operator(action, old, new)]

        async def unlogged(tx: SqlRunner) -> Operator | None:
            return (await work(tx))[0]

        if origin is None:
            return await self._store.atomic(unlogged)
        return await self._store._logged(origin, work)

    async def use_totp_step(self, operator_id: bytes, step: int) -> bool:
        async def work(tx: SqlRunner) -> bool:
            return bool(await tx.rows(USE_TOTP_STEP, (step, operator_id, step)))

        return await self._store.atomic(work)

    async def insert_session(
        self, session: OperatorSession, operator: Operator, origin: Origin
    ) -> None:
        async def work(tx: SqlRunner) -> tuple[None, list[Change]]:
            await tx.run(INSERT_SESSION, session_row(session))
            return None, [records.created_session(operator, session)]

        await self._store._logged(origin, work)

    async def session_by_token_hash(
        self, token_hash: bytes
    ) -> tuple[OperatorSession, Operator] | None:
        row = await self._one(SELECT_SESSION_BY_HASH, (token_hash,))
        if row is None:
            return None
        session = session_from_row(row)
        operator = await self.operator(session.operator_id)
        return None if operator is None else (session, operator)

    async def session(self, session_id: bytes) -> OperatorSession | None:
        row = await self._one(SELECT_SESSION, (session_id,))
        return None if row is None else session_from_row(row)

    async def touch_session(self, session_id: bytes, at: int) -> None:
        async def work(tx: SqlRunner) -> None:
            await tx.run(TOUCH_SESSION, (at, session_id, at))

        await self._store.atomic(work)

    async def sessions_of(self, operator_id: bytes) -> list[OperatorSession]:
        rows = await self._store.runner().rows(SELECT_SESSIONS_OF, (operator_id,))
        return [session_from_row(row) for row in rows]

    async def revoke_session(
        self, session_id: bytes, at: int, origin: Origin
    ) -> tuple[bool, OperatorSession] | None:
        async def work(
            tx: SqlRunner,
        ) -> tuple[tuple[bool, OperatorSession] | None, list[Change]]:
            read = SELECT_SESSION if self._store.serialized_writes else LOCK_SESSION
            rows = await tx.rows(read, (session_id,))
            if not rows:
                return None, []
            old = session_from_row(rows[0])
            if old.revoked_at is not None:
                return (False, old), []
            operator = await tx.rows(SELECT_OPERATOR, (old.operator_id,))
            await tx.run(REVOKE_SESSION, (at, session_id))
            new = msgspec.structs.replace(old, revoked_at=at)
            owner = operator_from_row(operator[0])
            return (True, new), [records.revoked_session(owner, old, new)]

        return await self._store._logged(origin, work)

    async def account_disabled(self, account_id: bytes) -> bool:
        account = await self._store.account(account_id)
        return account is None or account.disabled_at is not None

    async def count_login_failures(self, email_key: bytes, since: int) -> int:
        row = await self._one(COUNT_FAILURES, (email_key, since))
        return 0 if row is None else int(row[0])

    async def add_login_failure(self, email_key: bytes, at: int, older_than: int) -> None:
        async def work(tx: SqlRunner) -> None:
            await tx.run(FORGET_FAILURES, (email_key, older_than))
            await tx.run(INSERT_FAILURE, (email_key, at))

        await self._store.atomic(work)

    async def clear_login_failures(self, email_key: bytes) -> None:
        async def work(tx: SqlRunner) -> None:
            await tx.run(CLEAR_FAILURES, (email_key,))

        await self._store.atomic(work)


def operator_store(store: SqlDeviceStore) -> SqlOperatorStore:
    """The operators of `store` (the object the CLI and, later, the console use)."""
    return SqlOperatorStore(store)
