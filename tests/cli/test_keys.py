"""`devreg key …` and `devreg account list | disable | enable`, run as the real executable
on SQLite: the JSON a script reads, the secret printed once, and clean one-line refusals."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_cli import assert_clean_failure
from tests.support.server import devreg_env, run_cli


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    made = devreg_env(tmp_path / "data", None)
    assert run_cli(made, "init").returncode == 0
    return made


def cli_json(env: dict[str, str], *args: str) -> Any:
    done = run_cli(env, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_account_create_keeps_its_three_fields_and_its_keys_are_default_write_keys(
    env: dict[str, str],
) -> None:
    made = cli_json(env, "account", "create", "--name", "Acme")
    assert set(made) == {"account_id", "live_key", "test_key"}
    keys = cli_json(env, "key", "list", "--account", made["account_id"])["keys"]
    # made in one transaction, often in the same microsecond: in either order
    assert sorted((k["name"], k["mode"], k["scope"], k["status"]) for k in keys) == [
        ("default", "live", "write", "ACTIVE"),
        ("default", "test", "write", "ACTIVE"),
    ]
    prefixes = {k["mode"]: k["prefix"] for k in keys}
    assert made["live_key"].startswith(prefixes["live"])
    assert made["test_key"].startswith(prefixes["test"])
    listing = run_cli(env, "key", "list", "--account", made["account_id"], "--json").stdout
    assert made["live_key"] not in listing and made["test_key"] not in listing


def test_create_rotate_revoke_and_list_a_key(env: dict[str, str]) -> None:
    account = cli_json(env, "account", "create", "--name", "Acme")["account_id"]
    made = cli_json(
        env, "key", "create", "--account", account, "--mode", "test", "--name", "ci",
        "--scope", "read", "--expires-in", "30",
    )  # fmt: skip
    assert made["secret"].startswith("sk_test_") and made["scope"] == "read"
    assert made["expires_at"] is not None and made["status"] == "ACTIVE"
    rotated = cli_json(env, "key", "rotate", made["key_id"], "--overlap-hours", "2")
    assert rotated["replaces"] == made["key_id"] and rotated["rotated_from"] == made["key_id"]
    assert rotated["secret"] != made["secret"] and rotated["old_key_ends"] is not None
    again = run_cli(env, "key", "rotate", made["key_id"])
    assert_clean_failure(again, "rotated already")
    revoked = cli_json(env, "key", "revoke", rotated["key_id"])
    assert revoked["status"] == "REVOKED" and revoked["revoked_at"] is not None
    keys = {k["key_id"]: k for k in cli_json(env, "key", "list", "--account", account)["keys"]}
    assert keys[made["key_id"]]["status"] == "ACTIVE"  # within its overlap
    assert keys[rotated["key_id"]]["status"] == "REVOKED"
    assert "secret" not in json.dumps(list(keys.values()))


def test_disable_and_enable_an_account(env: dict[str, str]) -> None:
    account = cli_json(env, "account", "create", "--name", "Acme")["account_id"]
    cli_json(env, "account", "create", "--name", "Other")
    disabled = cli_json(env, "account", "disable", account)
    assert (disabled["status"], disabled["keys"]) == ("DISABLED", {"live": 1, "test": 1})
    listed = {a["account_id"]: a for a in cli_json(env, "account", "list")["accounts"]}
    assert listed[account]["status"] == "DISABLED" and listed[account]["disabled_at"]
    assert [a["status"] for a in listed.values()].count("ACTIVE") == 1
    assert cli_json(env, "account", "disable", account)["status"] == "DISABLED"  # no change
    enabled = cli_json(env, "account", "enable", account)
    assert (enabled["status"], enabled["disabled_at"]) == ("ACTIVE", None)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("key", "create", "--account", "acc_nope", "--mode", "live", "--name", "x"), ["account"]),
        (("key", "create", "--account", "acc_" + "0" * 32, "--mode", "live", "--name", "x"),
         ["no such account"]),
        (("key", "revoke", "not-a-uuid"), ["does not exist"]),
        (("key", "revoke", "00000000-0000-4000-8000-000000000000"), ["does not exist"]),
        (("key", "rotate", "00000000-0000-4000-8000-000000000000"), ["does not exist"]),
        (("account", "disable", "acc_" + "0" * 32), ["no such account"]),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_changes_nothing(
    env: dict[str, str], args: tuple[str, ...], words: list[str]
) -> None:
    assert_clean_failure(run_cli(env, *args), *words)


@pytest.mark.parametrize(
    ("option", "value", "word"),
    [("--expires-in", "0", "expires_in_days"), ("--name", " ", "name")],
)
def test_a_bad_key_is_refused_and_not_made(
    env: dict[str, str], option: str, value: str, word: str
) -> None:
    account = cli_json(env, "account", "create", "--name", "Acme")["account_id"]
    args = {"--mode": "live", "--name": "ok", option: value}
    flat = [item for pair in args.items() for item in pair]
    assert_clean_failure(run_cli(env, "key", "create", "--account", account, *flat), word)
    assert len(cli_json(env, "key", "list", "--account", account)["keys"]) == 2
    overlap = run_cli(env, "key", "rotate", "00000000-0000-4000-8000-000000000000",
                      "--overlap-hours", "nan")  # fmt: skip
    assert_clean_failure(overlap, "overlap")


def test_a_key_limited_to_divisions(env: dict[str, str]) -> None:
    account = cli_json(env, "account", "create", "--name", "Acme")["account_id"]
    other = cli_json(env, "account", "create", "--name", "Other")["account_id"]
    database = Path(env["DEVREG_DATA_DIR"]) / "devreg.sqlite3"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        ours, theirs = (
            str(uuid.UUID(bytes=conn.execute(
                "SELECT id FROM divisions WHERE account_id = ?", (bytes.fromhex(acc[4:]),)
            ).fetchone()[0]))
            for acc in (account, other)
        )  # fmt: skip
    made = cli_json(
        env, "key", "create", "--account", account, "--mode", "live", "--name", "north",
        "--division", ours, "--division", ours,
    )  # fmt: skip
    assert made["division_ids"] == [ours]
    rotated = cli_json(env, "key", "rotate", made["key_id"], "--overlap-hours", "0")
    assert rotated["division_ids"] == [ours]
    listed = {k["key_id"]: k for k in cli_json(env, "key", "list", "--account", account)["keys"]}
    assert listed[rotated["key_id"]]["division_ids"] == [ours]
    assert sum(1 for k in listed.values() if k["division_ids"] is None) == 2  # the defaults
    base = ("key", "create", "--account", account, "--mode", "live", "--name", "x")
    assert_clean_failure(run_cli(env, *base, "--division", theirs), theirs, "does not exist")
    assert_clean_failure(run_cli(env, *base, "--division", "north"), "--division")
    assert len(cli_json(env, "key", "list", "--account", account)["keys"]) == 4
