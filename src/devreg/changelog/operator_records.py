"""Operators and their sessions in the change log: whole records without a secret (never
the password's hash, the TOTP secret, a session token or its hash), and the Change each
operator write logs."""

from __future__ import annotations

import msgspec

from devreg.changelog.entries import Action, Change, ObjectType
from devreg.core.ids import render_uuid
from devreg.core.operator_store import Operator, OperatorSession


class OperatorRecord(msgspec.Struct, frozen=True):
    id: str
    email: str
    role: str
    account_id: str | None  # None: a platform administrator
    password_changed_at: int  # when, never what
    totp_enabled: bool
    disabled_at: int | None
    created: int


class OperatorSessionRecord(msgspec.Struct, frozen=True):
    id: str
    operator_id: str
    created: int
    expires_at: int
    revoked_at: int | None
    address: str | None


def operator_record(operator: Operator) -> OperatorRecord:
    return OperatorRecord(
        render_uuid(operator.id), operator.email, operator.role.value,
        None if operator.account_id is None else render_uuid(operator.account_id),
        operator.password_changed_at, operator.totp_enabled_at is not None,
        operator.disabled_at, operator.created_at,
    )  # fmt: skip


def session_record(session: OperatorSession) -> OperatorSessionRecord:
    return OperatorSessionRecord(
        render_uuid(session.id), render_uuid(session.operator_id), session.created_at,
        session.expires_at, session.revoked_at, session.address,
    )  # fmt: skip


def created_operator(operator: Operator) -> Change:
    return Change(
        Action.OPERATOR_CREATE, ObjectType.OPERATOR, operator.id, operator.account_id, None,
        None, None, operator_record(operator),
    )  # fmt: skip


def changed_operator(action: Action, old: Operator, new: Operator) -> Change:
    return Change(
        action, ObjectType.OPERATOR, new.id, new.account_id, None, None,
        operator_record(old), operator_record(new),
    )  # fmt: skip


def created_session(operator: Operator, session: OperatorSession) -> Change:
    return Change(
        Action.OPERATOR_SESSION_CREATE, ObjectType.OPERATOR_SESSION, session.id,
        operator.account_id, None, None, None, session_record(session),
    )  # fmt: skip


def revoked_session(operator: Operator, old: OperatorSession, new: OperatorSession) -> Change:
    return Change(
        Action.OPERATOR_SESSION_REVOKE, ObjectType.OPERATOR_SESSION, new.id,
        operator.account_id, None, None, session_record(old), session_record(new),
    )  # fmt: skip
