"""API keys: what is made, what is stored, how Basic credentials are read and checked."""

from __future__ import annotations

import base64
import hashlib

import msgspec
import pytest

from devreg.auth.api_keys import (
    LIVE_PREFIX,
    MAX_BASIC_HEADER,
    TEST_PREFIX,
    authenticate_key,
    hash_key,
    new_api_key,
    parse_basic,
)
from devreg.core.accounts import build_account
from devreg.core.errors import Unauthenticated
from devreg.core.ids import new_id, render_prefixed
from devreg.core.store import DeviceStore
from tests.support.origins import TEST_ORIGIN

NOW = 1_700_000_000_000_000


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


# --- new_api_key --------------------------------------------------------------------------


@pytest.mark.parametrize(("live_mode", "prefix"), [(True, "sk_live_"), (False, "sk_test_")])
def test_new_key_prefix_decides_the_mode(live_mode: bool, prefix: str) -> None:
    account_id = new_id()
    secret, record = new_api_key(account_id, live_mode, NOW)
    assert secret.startswith(prefix)
    assert record.live_mode is live_mode
    assert record.account_id == account_id
    assert record.created_at == NOW
    assert record.revoked_at is None


def test_new_key_stores_only_a_hash() -> None:
    secret, record = new_api_key(new_id(), True, NOW)
    assert record.key_hash == hashlib.sha256(secret.encode()).digest() == hash_key(secret)
    stored = msgspec.json.encode(record)
    assert secret.encode() not in stored
    assert secret[len(LIVE_PREFIX) :].encode() not in stored
    # the display prefix tells keys apart but gives away only a few characters
    assert secret.startswith(record.prefix)
    assert len(record.prefix) == len(LIVE_PREFIX) + 4


def test_new_keys_are_long_random_and_distinct() -> None:
    secrets_ = [new_api_key(new_id(), False, NOW)[0] for _ in range(200)]
    assert len(set(secrets_)) == 200
    for secret in secrets_:
        random_part = secret[len(TEST_PREFIX) :]
        assert len(random_part) >= 43  # 256 bits, URL-safe base64
        assert all(c.isalnum() or c in "-_" for c in random_part)


# --- parse_basic --------------------------------------------------------------------------


def test_parse_basic_reads_user_and_password() -> None:
    assert parse_basic(basic("acc_123:sk_live_abc")) == ("acc_123", "sk_live_abc")


def test_parse_basic_scheme_is_case_insensitive_and_password_may_hold_colons() -> None:
    header = "basic " + base64.b64encode(b"acc_1:sk_test_a:b").decode()
    assert parse_basic(header) == ("acc_1", "sk_test_a:b")


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (None, "Missing Authorization header"),
        ("", "Missing Authorization header"),
        ("Bearer abc.def.ghi", "Basic scheme"),
        ("Digest username=x", "Basic scheme"),
        ("Basic", "Basic scheme"),
        ("Basic    ", "Basic scheme"),
        ("Basic !!!not-base64!!!", "not valid base64"),
        ("Basic YWJj=ZGVm", "not valid base64"),  # padding in the middle
        ("Basic " + base64.b64encode(b"\xff\xfe:\xfd").decode(), "Basic credentials"),
        ("Basic \xff\xfe\xfd", "not valid base64"),  # raw non-ASCII bytes, read as latin-1
        ("Basic Zm9v\u00e9YmFy", "not valid base64"),
        (basic("no-colon-here"), "account_id:api_key"),
        (basic(":sk_live_abc"), "account_id:api_key"),
        (basic("acc_123:"), "account_id:api_key"),
        (basic(":"), "account_id:api_key"),
        ("Basic " + "A" * MAX_BASIC_HEADER, "too long"),
    ],
)
def test_parse_basic_refuses_with_a_message_naming_the_problem(
    header: str | None, problem: str
) -> None:
    with pytest.raises(Unauthenticated) as caught:
        parse_basic(header)
    assert problem in caught.value.message


def test_header_just_under_the_limit_is_read() -> None:
    user = "acc_1"
    password = "sk_live_" + "x" * 300
    header = basic(f"{user}:{password}")
    assert len(header) <= MAX_BASIC_HEADER
    assert parse_basic(header) == (user, password)


# --- authenticate_key against the real store --------------------------------------------


async def make_account(store: DeviceStore, *, revoked: bool = False) -> tuple[str, str, str]:
    """(account id as clients write it, live secret, test secret)."""
    new = build_account("Acme", NOW)
    live_secret, live = new_api_key(new.account.id, True, NOW)
    test_secret, test = new_api_key(new.account.id, False, NOW)
    if revoked:
        live = msgspec.structs.replace(live, revoked_at=NOW + 1)
    await store.create_account(new.account, [live, test], new.division, new.profile, TEST_ORIGIN)
    return render_prefixed("acc", new.account.id), live_secret, test_secret


async def test_right_key_authenticates(store: DeviceStore) -> None:
    account_id, live_secret, test_secret = await make_account(store)
    live = await authenticate_key(store, account_id, live_secret)
    assert live.live_mode is True
    assert render_prefixed("acc", live.account_id) == account_id
    test = await authenticate_key(store, account_id, test_secret)
    assert test.live_mode is False
    assert test.id != live.id


async def test_key_of_another_account_is_refused(store: DeviceStore) -> None:
    account_id, _, _ = await make_account(store)
    _, other_secret, _ = await make_account(store)
    with pytest.raises(Unauthenticated, match="Bad credentials"):
        await authenticate_key(store, account_id, other_secret)


@pytest.mark.parametrize(
    "account_text",
    ["", "acc_", "not-an-account", "ACC_00000000000000000000000000000000"],
)
async def test_malformed_account_id_is_refused(store: DeviceStore, account_text: str) -> None:
    _, live_secret, _ = await make_account(store)
    with pytest.raises(Unauthenticated, match="Bad credentials"):
        await authenticate_key(store, account_text, live_secret)


async def test_unknown_account_id_is_refused(store: DeviceStore) -> None:
    _, live_secret, _ = await make_account(store)
    with pytest.raises(Unauthenticated, match="Bad credentials"):
        await authenticate_key(store, render_prefixed("acc", new_id()), live_secret)


async def test_unknown_key_is_refused(store: DeviceStore) -> None:
    account_id, live_secret, _ = await make_account(store)
    for secret in (live_secret + "x", live_secret[:-1], "sk_live_" + "a" * 43, "sk_test_"):
        with pytest.raises(Unauthenticated, match="Bad credentials"):
            await authenticate_key(store, account_id, secret)


async def test_key_without_a_known_prefix_is_refused(store: DeviceStore) -> None:
    account_id, live_secret, _ = await make_account(store)
    for secret in ("pk_live_" + live_secret[8:], live_secret[8:], "", live_secret.upper()):
        with pytest.raises(Unauthenticated, match="Bad credentials"):
            await authenticate_key(store, account_id, secret)


async def test_revoked_key_is_refused(store: DeviceStore) -> None:
    account_id, live_secret, test_secret = await make_account(store, revoked=True)
    with pytest.raises(Unauthenticated, match="Bad credentials"):
        await authenticate_key(store, account_id, live_secret)
    # the account's other key still works
    assert (await authenticate_key(store, account_id, test_secret)).live_mode is False
