"""A new account: a default division and a default profile whose three flags are true."""

from __future__ import annotations

import pytest

from devreg.core.accounts import (
    DEFAULT_DIVISION_NAME,
    DEFAULT_PROFILE_NAME,
    MAX_NAME,
    build_account,
    check_name,
)
from devreg.core.errors import InvalidInput

NOW = 1_700_000_000_000_000


def test_build_account_has_default_division_and_profile() -> None:
    new = build_account("Acme", NOW)
    assert new.account.name == "Acme"
    assert new.account.created_at == NOW
    assert len(new.account.id) == 16

    assert new.division.account_id == new.account.id
    assert new.division.is_default
    assert new.division.name == DEFAULT_DIVISION_NAME
    assert new.division.created_at == new.division.updated_at == NOW

    assert new.profile.account_id == new.account.id
    assert new.profile.division_id == new.division.id
    assert new.profile.is_default
    assert new.profile.name == DEFAULT_PROFILE_NAME
    assert new.profile.created_at == new.profile.updated_at == NOW


def test_default_profile_allows_read_write_and_renew() -> None:
    profile = build_account("Acme", NOW).profile
    assert (profile.allow_read, profile.allow_write, profile.allow_renew) == (True, True, True)


def test_ids_are_distinct_and_fresh_per_account() -> None:
    first, second = build_account("Acme", NOW), build_account("Acme", NOW)
    ids = {
        first.account.id,
        first.division.id,
        first.profile.id,
        second.account.id,
        second.division.id,
        second.profile.id,
    }
    assert len(ids) == 6


def test_name_is_stripped() -> None:
    assert build_account("  Acme Corp \t", NOW).account.name == "Acme Corp"


@pytest.mark.parametrize("name", ["", "   ", "\t\n"])
def test_empty_name_is_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="must not be empty") as caught:
        build_account(name, NOW)
    assert caught.value.field == "name"


def test_name_length_limit() -> None:
    assert build_account("x" * MAX_NAME, NOW).account.name == "x" * MAX_NAME
    with pytest.raises(InvalidInput, match=f"at most {MAX_NAME} characters"):
        build_account("x" * (MAX_NAME + 1), NOW)


@pytest.mark.parametrize("name", ["Ac\x00me", "Ac\nme", "Ac\x1bme", "Ac\x7fme"])
def test_control_characters_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="control characters"):
        build_account(name, NOW)


def test_unicode_names_are_fine() -> None:
    assert build_account("Ünïcødé GmbH 株式会社", NOW).account.name == "Ünïcødé GmbH 株式会社"


def test_check_name_names_the_field_it_checks() -> None:
    with pytest.raises(InvalidInput, match="division name must not be empty") as caught:
        check_name(" ", "division name")
    assert caught.value.field == "division name"
