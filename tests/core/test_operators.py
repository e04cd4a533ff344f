"""Operators' use cases (core/operators.py) on both stores: users, passwords, sign-in and
its limits, sessions and their timeouts, TOTP, permissions, and the change log."""

from __future__ import annotations

import base64
import logging
import secrets
import sys
import uuid
from pathlib import Path

import msgspec
import pytest

from devreg.auth import totp
from devreg.auth.rate_limit import MemoryRateLimiter
from devreg.changelog.entries import Entry
from devreg.core import operators as ops
from devreg.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from devreg.core.ids import render_uuid
from devreg.core.operators import Operators
from devreg.core.roles import Role
from devreg.core.store import DeviceStore
from devreg.storage.base import SqlDeviceStore
from devreg.storage.operators import operator_store
from tests.core.conftest import make_tenant
from tests.support.origins import TEST_ORIGIN

START = 1_700_000_000_000_000
PASSWORD = "correct horse battery"
EMAIL = "Ann.Admin@Example.com"  # made unique per test: PostgreSQL's database is shared
TAG = ""


def addr(name: str) -> str:
    return f"{name}.{TAG}@example.com"


@pytest.fixture(autouse=True)
def unique_emails(monkeypatch: pytest.MonkeyPatch) -> None:
    tag = secrets.token_hex(4)
    monkeypatch.setattr(sys.modules[__name__], "TAG", tag)
    monkeypatch.setattr(sys.modules[__name__], "EMAIL", f"Ann.Admin.{tag}@Example.com")


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> int:
        return self.now

    def advance(self, us: int) -> None:
        self.now += us


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def users(store: DeviceStore, clock: Clock, tmp_path: Path) -> Operators:
    assert isinstance(store, SqlDeviceStore)
    box = totp.load_or_create_totp_key(tmp_path / "keys")
    return Operators(operator_store(store), box, clock)


async def entries(store: DeviceStore, after: int) -> list[Entry]:
    assert isinstance(store, SqlDeviceStore)
    return await store.changes_after(after, 1000)


async def test_create_normalises_the_email_and_hashes_the_password(
    users: Operators, store: DeviceStore
) -> None:
    made = await users.create(EMAIL, "admin", None, PASSWORD, TEST_ORIGIN)
    assert made.email == EMAIL.casefold() and made.platform_admin
    assert made.password_hash.startswith("$argon2id$") and PASSWORD not in made.password_hash
    assert (await users.find(EMAIL.upper() + " ")).id == made.id
    assert (await users.find(str(uuid.UUID(bytes=made.id)))).id == made.id
    with pytest.raises(Conflict):  # the same email, as stored
        await users.create(EMAIL.upper(), "admin", None, PASSWORD, TEST_ORIGIN)
    assert made.id in [op.id for op in await users.list_operators()]


async def test_create_refuses_bad_input(users: Operators, store: DeviceStore) -> None:
    tenant = await make_tenant(store)
    with pytest.raises(InvalidInput):
        await users.create(EMAIL, "admin", None, "short", TEST_ORIGIN)
    with pytest.raises(InvalidInput):
        await users.create("not an email", "admin", None, PASSWORD, TEST_ORIGIN)
    with pytest.raises(InvalidInput):
        await users.create(EMAIL, "root", None, PASSWORD, TEST_ORIGIN)
    with pytest.raises(InvalidInput):  # only an admin may be of every account
        await users.create(EMAIL, "viewer", None, PASSWORD, TEST_ORIGIN)
    with pytest.raises(NotFound):
        await users.create(EMAIL, "viewer", bytes(16), PASSWORD, TEST_ORIGIN)
    made = await users.create(EMAIL, "viewer", tenant.account_id, PASSWORD, TEST_ORIGIN)
    assert made.account_id == tenant.account_id and not made.platform_admin


async def test_wrong_password_and_unknown_email_are_refused_alike(users: Operators) -> None:
    await users.create(EMAIL, "admin", None, PASSWORD, TEST_ORIGIN)
    refusals = []
    for email, password in ((EMAIL, "wrong password!"), (addr("nobody"), PASSWORD)):
        with pytest.raises(Unauthenticated) as refused:
            await users.authenticate(email, password)
        refusals.append((type(refused.value), refused.value.message))
    assert refusals[0] == refusals[1] == (Unauthenticated, ops.REFUSED)


async def test_unknown_emails_still_run_argon2(
    users: Operators, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[str] = []
    real = ops._verify

    def spy(password_hash: str, password: str) -> bool:
        verified.append(password_hash)
        return real(password_hash, password)

    monkeypatch.setattr(ops, "_verify", spy)
    with pytest.raises(Unauthenticated):
        await users.authenticate(addr("nobody"), PASSWORD)
    assert len(verified) == 1 and verified[0].startswith("$argon2id$")


async def test_sign_in_gives_a_session_once(users: Operators, store: DeviceStore) -> None:
    made = await users.create(EMAIL, "admin", None, PASSWORD, TEST_ORIGIN)
    signed = await users.authenticate(EMAIL.casefold(), PASSWORD, address="192.0.2.1")
    assert signed.token.startswith(ops.TOKEN_PREFIX) and signed.operator.id == made.id
    session, operator = await users.session(signed.token)
    assert (session.id, operator.id, session.address) == (signed.session.id, made.id, "192.0.2.1")
    assert session.expires_at == START + ops.ABSOLUTE_TIMEOUT_US
    assert signed.token.encode() not in session.token_hash
    assert [s.id for s in await users.sessions(made.id)] == [session.id]
    for bad in ("", "dvs_", "dvs_" + "A" * 43, signed.token + "x", "nonsense"):
        with pytest.raises(Unauthenticated):
            await users.session(bad)


async def test_the_per_user_limit(users: Operators, clock: Clock) -> None:
    await users.create(EMAIL, "admin", None, PASSWORD, TEST_ORIGIN)
    for _ in range(ops.FAILURE_LIMIT):
        with pytest.raises(Unauthenticated):
            await users.authenticate(EMAIL, "wrong password!")
    with pytest.raises(RateLimited):  # even with the right password
        await users.authenticate(EMAIL, PASSWORD)
    # Unknown emails are limited the same way: the limit tells nothing either.
    for _ in range(ops.FAILURE_LIMIT):
        with pytest.raises(Unauthenticated):
            await users.authenticate(addr("nobody"), "wrong password!")
    with pytest.raises(RateLimited):
        await users.authenticate(addr("nobody"), "wrong password!")
    clock.advance(ops.FAILURE_WINDOW_US)
    assert (await users.authenticate(EMAIL, PASSWORD)).operator.email == EMAIL.casefold()


async def test_a_success_forgets_the_failures(users: Operators) -> None:
    await users.create(EMAIL, "admin", None, PASSWORD, TEST_ORIGIN)
    for _ in range(2):
        for _ in range(ops.FAILURE_LIMIT - 1):
            with pytest.raises(Unauthenticated):
                await users.authenticate(EMAIL, "wrong password!")
        await users.authenticate(EMAIL, PASSWORD)


async def test_the_per_address_limit(users: Operators) -> None:
    users.limiter = MemoryRateLimiter(rate=0.001, burst=3)
    await users.create(EMAIL, "admin", None, PASSWORD, TEST_ORIGIN)
    for index in range(3):  # a different email each time: only the address is counted
        with pytest.raises(Unauthenticated):
            await users.authenticate(addr(f"u{index}"), "wrong password!", address="198.51.100.7")
    with pytest.raises(RateLimited):
        await users.authenticate(EMAIL, PASSWORD, address="198.51.100.7")
    await users.authenticate(EMAIL, PASSWORD, address="198.51.100.8")  # another address


async def test_a_disabled_user_is_refused_at_once(users: Operators, store: DeviceStore) -> None:
    made = await users.create(EMAIL, "operator", (await make_tenant(store)).account_id,
                              PASSWORD, TEST_ORIGIN)  # fmt: skip
    first = await users.authenticate(EMAIL, PASSWORD)
    second = await users.authenticate(EMAIL, PASSWORD)
    disabled = await users.set_disabled(made.id, True, TEST_ORIGIN)
    assert disabled.disabled_at == START
    for signed in (first, second):
        with pytest.raises(Unauthenticated):
            await users.session(signed.token)
    assert all(s.revoked_at == START for s in await users.sessions(made.id))
    with pytest.raises(Unauthenticated) as refused:  # refused like a wrong password
        await users.authenticate(EMAIL, PASSWORD)
    assert refused.value.message == ops.REFUSED
    await users.set_disabled(made.id, False, TEST_ORIGIN)
    with pytest.raises(Unauthenticated):  # enabling brings no session back
        await users.session(first.token)
    await users.session((await users.authenticate(EMAIL, PASSWORD)).token)


async def test_set_password_ends_the_sessions(users: Operators, clock: Clock) -> None:
    made = await users.create(EMAIL, "admin", None, PASSWORD, TEST_ORIGIN)
    signed = await users.authenticate(EMAIL, PASSWORD)
    clock.advance(1)
    changed = await users.set_password(made.id, "a new long password", TEST_ORIGIN)
    assert changed.password_changed_at == START + 1
    with pytest.raises(Unauthenticated):
        await users.session(signed.token)
    with pytest.raises(Unauthenticated):
        await users.authenticate(EMAIL, PASSWORD)
    await users.authenticate(EMAIL, "a new long password")
    with pytest.raises(InvalidInput):
        await users.set_password(made.id, "too short", TEST_ORIGIN)


async def test_idle_timeout(users: Operators, clock: Clock) -> None:
    await users.create(EMAIL, "admin", None, PASSWORD, TEST_ORIGIN)
    signed = await users.authenticate(EMAIL, PASSWORD)
    clock.advance(ops.IDLE_TIMEOUT_US - 1)
    session, _ = await users.session(signed.token)  # used: last seen moves
    assert session.last_seen_at == clock.now
    clock.advance(ops.IDLE_TIMEOUT_US - 1)
    await users.session(signed.token)
    clock.advance(ops.IDLE_TIMEOUT_US)
    with pytest.raises(Unauthenticated):
        await users.session(signed.token)


async def test_absolute_timeout(users: Operators, clock: Clock) -> None:
    await users.create(EMAIL, "admin", None, PASSWORD, TEST_ORIGIN)
    signed = await users.authenticate(EMAIL, PASSWORD)
    step = ops.IDLE_TIMEOUT_US // 2
    while clock.now + step < START + ops.ABSOLUTE_TIMEOUT_US:
        clock.advance(step)
        await users.session(signed.token)  # never idle
    clock.advance(START + ops.ABSOLUTE_TIMEOUT_US - clock.now)
    with pytest.raises(Unauthenticated):
        await users.session(signed.token)


async def test_revoke_a_session(users: Operators, store: DeviceStore) -> None:
    made = await users.create(EMAIL, "admin", None, PASSWORD, TEST_ORIGIN)
    kept = await users.authenticate(EMAIL, PASSWORD)
    ended = await users.authenticate(EMAIL, PASSWORD)
    revoked = await users.revoke_session(ended.session.id, TEST_ORIGIN)
    assert revoked.revoked_at == START
    assert (await users.revoke_session(ended.session.id, TEST_ORIGIN)).revoked_at == START
    with pytest.raises(Unauthenticated):
        await users.session(ended.token)
    await users.session(kept.token)
    with pytest.raises(NotFound):
        await users.revoke_session(bytes(16), TEST_ORIGIN)
    assert {s.id for s in await users.sessions(made.id)} == {kept.session.id, ended.session.id}


async def test_totp_enrolment_and_sign_in(users: Operators, clock: Clock) -> None:
    made = await users.create(EMAIL, "admin", None, PASSWORD, TEST_ORIGIN)
    enrolment = await users.begin_totp(made)
    encoded = enrolment.uri.split("secret=")[1].split("&")[0]
    secret = base64.b32decode(encoded + "=" * (-len(encoded) % 8))
    await users.authenticate(EMAIL, PASSWORD)  # not required before it is confirmed
    with pytest.raises(InvalidInput):
        await users.confirm_totp(made.id, "no code", TEST_ORIGIN)
    enrolled = await users.confirm_totp(made.id, totp.totp(secret, clock.now / 1e6), TEST_ORIGIN)
    assert enrolled.totp_enabled_at == START and enrolled.totp_secret is not None
    assert secret not in enrolled.totp_secret  # stored sealed
    with pytest.raises(Unauthenticated):  # now required
        await users.authenticate(EMAIL, PASSWORD)
    with pytest.raises(Unauthenticated):  # the confirming code's step is used already
        await users.authenticate(EMAIL, PASSWORD, totp.totp(secret, clock.now / 1e6))
    clock.advance(30_000_000)
    code = totp.totp(secret, clock.now / 1e6)
    await users.authenticate(EMAIL, PASSWORD, code)
    with pytest.raises(Unauthenticated):  # a step is used at most once
        await users.authenticate(EMAIL, PASSWORD, code)
    with pytest.raises(Conflict):
        await users.begin_totp(await users.find(EMAIL))
    removed = await users.remove_totp(made.id, TEST_ORIGIN)
    assert removed.totp_secret is None and removed.totp_enabled_at is None
    await users.authenticate(EMAIL, PASSWORD)


async def test_permissions_of_an_acting_operator(users: Operators, store: DeviceStore) -> None:
    acme, globex = await make_tenant(store, "Acme"), await make_tenant(store, "Globex")
    admin = await users.create(addr("a"), "admin", acme.account_id, PASSWORD, TEST_ORIGIN)
    viewer = await users.create(addr("v"), "viewer", acme.account_id, PASSWORD, TEST_ORIGIN)
    other = await users.create(addr("o"), "viewer", globex.account_id, PASSWORD,
                               TEST_ORIGIN)  # fmt: skip
    platform = await users.create(addr("p"), "admin", None, PASSWORD, TEST_ORIGIN)
    made = await users.create(addr("n"), Role.OPERATOR, acme.account_id, PASSWORD,
                              TEST_ORIGIN, by=admin)  # fmt: skip
    assert {op.id for op in await users.list_operators(by=admin)} == {admin.id, viewer.id, made.id}
    every = {op.id for op in await users.list_operators(by=platform)}
    assert {admin.id, viewer.id, other.id, platform.id, made.id} <= every
    for refused in (
        users.create(addr("x"), "viewer", acme.account_id, PASSWORD, TEST_ORIGIN, by=viewer),
        users.create(addr("x"), "admin", None, PASSWORD, TEST_ORIGIN, by=admin),
        users.create(addr("x"), "viewer", globex.account_id, PASSWORD, TEST_ORIGIN, by=admin),
        users.set_disabled(other.id, True, TEST_ORIGIN, by=admin),
        users.set_password(platform.id, "a new long password", TEST_ORIGIN, by=admin),
        users.list_operators(by=viewer),
    ):
        with pytest.raises(Forbidden):
            await refused
    await users.set_disabled(other.id, True, TEST_ORIGIN, by=platform)


async def test_the_change_log_has_every_change_and_no_secret(
    users: Operators, store: DeviceStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert isinstance(store, SqlDeviceStore)
    head = (await store.change_head()).seq
    made = await users.create(EMAIL, "admin", None, PASSWORD, TEST_ORIGIN)
    signed = await users.authenticate(EMAIL, PASSWORD, address="192.0.2.7", request_id="req_in")
    secret_uri = (await users.begin_totp(made)).uri
    encoded = secret_uri.split("secret=")[1].split("&")[0]
    secret = base64.b32decode(encoded + "=" * (-len(encoded) % 8))
    origin = ops.operator_origin(made, "req_console")
    await users.confirm_totp(made.id, totp.totp(secret, clock.now / 1e6), origin)
    await users.remove_totp(made.id, origin)
    await users.revoke_session(signed.session.id, origin)
    await users.set_password(made.id, "a new long password", TEST_ORIGIN)
    await users.set_disabled(made.id, True, TEST_ORIGIN)
    await users.set_disabled(made.id, False, TEST_ORIGIN)
    logged = [e for e in await entries(store, head) if e.object_type.startswith("operator")]
    assert [e.action for e in logged] == [
        "operator.create", "operator_session.create", "operator.totp_enroll",
        "operator.totp_remove", "operator_session.revoke", "operator.set_password",
        "operator.disable", "operator.enable",
    ]  # fmt: skip
    signed_in = logged[1]  # by the operator, with the request's id and the address
    assert (signed_in.actor_kind, signed_in.actor_id, signed_in.request_id) == (
        "operator", render_uuid(made.id), "req_in",
    )  # fmt: skip
    assert msgspec.json.decode(signed_in.after or "{}")["address"] == "192.0.2.7"
    assert logged[2].actor_kind == "operator" and logged[2].request_id == "req_console"
    assert msgspec.json.decode(logged[0].after or "{}")["email"] == made.email
    current = await users.find(EMAIL)
    text = msgspec.json.encode(logged).decode() + caplog.text
    for secret_text in (
        PASSWORD, "a new long password", made.password_hash, current.password_hash,
        signed.token, signed.session.token_hash.hex(), encoded, "argon2",
    ):  # fmt: skip
        assert secret_text not in text


# --- from review: the limits under concurrency, lock-outs, races and odd input


async def test_guesses_sent_at_once_are_tried_at_most_up_to_the_limit(users: Operators) -> None:
    import asyncio

    await users.create(EMAIL, "admin", None, PASSWORD, TEST_ORIGIN)
    tried: list[int] = []
    real = ops._verify

    def counting(hashed: str, password: str) -> bool:
        tried.append(1)
        return real(hashed, password)

    ops._verify = counting  # type: ignore[assignment]
    try:
        answers = await asyncio.gather(
            *(users.authenticate(EMAIL, f"wrong guess {n}!!", address="198.51.100.9")
              for n in range(40)),
            return_exceptions=True,
        )  # fmt: skip
    finally:
        ops._verify = real  # type: ignore[assignment]
    assert len(tried) <= ops.FAILURE_LIMIT, len(tried)
    assert all(isinstance(a, Unauthenticated | RateLimited) for a in answers), answers


async def test_failures_from_one_address_do_not_lock_the_user_out_elsewhere(
    users: Operators,
) -> None:
    await users.create(EMAIL, "admin", None, PASSWORD, TEST_ORIGIN)
    for _ in range(ops.FAILURE_LIMIT + 3):
        with pytest.raises((Unauthenticated, RateLimited)):
            await users.authenticate(EMAIL, "wrong password!", address="198.51.100.1")
    with pytest.raises(RateLimited):
        await users.authenticate(EMAIL, PASSWORD, address="198.51.100.1")
    assert (await users.authenticate(EMAIL, PASSWORD, address="192.0.2.50")).operator


async def test_a_session_opened_before_a_password_change_is_refused(
    users: Operators, clock: Clock
) -> None:
    made = await users.create(EMAIL, "admin", None, PASSWORD, TEST_ORIGIN)
    signed = await users.authenticate(EMAIL, PASSWORD)
    clock.advance(1_000_000)
    await users.set_password(made.id, PASSWORD + " new", TEST_ORIGIN)
    # as if the sign-in had raced the change: its session stored after the revocation
    late = msgspec.structs.replace(
        signed.session, id=uuid.uuid4().bytes, token_hash=secrets.token_bytes(32)
    )
    await users.store.insert_session(late, made, TEST_ORIGIN)
    found = await users.store.session_by_token_hash(late.token_hash)
    assert found is not None and found[0].revoked_at is None
    with pytest.raises(Unauthenticated):
        await users.session(signed.token)


@pytest.mark.parametrize(
    ("email", "password"),
    [("a\ud800@x.io", PASSWORD), ("a\x00@x.io", PASSWORD), (EMAIL, "x\ud800" * 12)],
)
async def test_unreadable_input_is_refused_like_a_wrong_password(
    users: Operators, email: str, password: str
) -> None:
    await users.create(EMAIL, "admin", None, PASSWORD, TEST_ORIGIN)
    with pytest.raises(Unauthenticated) as refused:
        await users.authenticate(email, password)
    assert refused.value.message == ops.REFUSED


async def test_operators_of_a_disabled_account_are_refused(
    users: Operators, store: DeviceStore
) -> None:
    tenant = await make_tenant(store)
    await users.create(EMAIL, "admin", tenant.account_id, PASSWORD, TEST_ORIGIN)
    signed = await users.authenticate(EMAIL, PASSWORD)
    await store.set_account_disabled(tenant.account_id, START, TEST_ORIGIN)
    with pytest.raises(Unauthenticated):
        await users.session(signed.token)
    with pytest.raises(Unauthenticated):
        await users.authenticate(EMAIL, PASSWORD)
    await store.set_account_disabled(tenant.account_id, None, TEST_ORIGIN)
    assert (await users.session(signed.token))[1].email == EMAIL.casefold()


async def test_the_user_removes_its_own_second_factor_only_with_a_code(
    users: Operators, clock: Clock
) -> None:
    made = await users.create(EMAIL, "admin", None, PASSWORD, TEST_ORIGIN)
    enrolment = await users.begin_totp(made)
    encoded = enrolment.uri.split("secret=")[1].split("&")[0]
    secret = base64.b32decode(encoded + "=" * (-len(encoded) % 8))
    await users.confirm_totp(made.id, totp.totp(secret, clock.now / 1e6), TEST_ORIGIN)
    with pytest.raises(Conflict):  # the caller's stale copy says none: the store says one
        await users.begin_totp(made)
    with pytest.raises(Unauthenticated):
        await users.remove_totp(made.id, TEST_ORIGIN, by=made)
    clock.advance(30_000_000)
    removed = await users.remove_totp(
        made.id, TEST_ORIGIN, by=made, code=totp.totp(secret, clock.now / 1e6)
    )
    assert removed.totp_enabled_at is None
