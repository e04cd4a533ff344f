"""The stable command line of PRODUCT.md, run as the real `devreg` executable."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.dialect_f.helpers import anonymous_client
from tests.support.server import (
    RunningServer,
    create_account,
    devreg_env,
    run_cli,
    start_server,
)

ACCOUNT_ID = re.compile(r"^acc_[0-9a-f]{32}$")
KEY = re.compile(r"^sk_(live|test)_[A-Za-z0-9_-]{40,}$")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DEVREG_")}


def applied(stdout: str) -> int:
    found = re.search(r"(\d+) migration", stdout)
    assert found, stdout
    return int(found.group(1))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_clean_failure(done: object, *words: str) -> None:
    """Exit 1 with a one-line message naming the problem, not a traceback."""
    assert getattr(done, "returncode", None) == 1, done
    stderr: str = getattr(done, "stderr", "")
    assert "Traceback" not in stderr, stderr
    assert stderr.startswith("devreg: "), stderr
    for word in words:
        assert word.lower() in stderr.lower(), (word, stderr)
    assert getattr(done, "stdout", "") == "", done


# --- init -------------------------------------------------------------------------------


def test_init_creates_a_private_data_dir_and_is_idempotent(tmp_path: Path) -> None:
    data = tmp_path / "deep" / "data"
    first = run_cli(devreg_env(data, None), "init")
    assert first.returncode == 0, first.stderr
    assert applied(first.stdout) >= 1
    assert mode(data) == 0o700
    key_file = data / "jwt-signing.key"
    assert mode(key_file) == 0o600
    key = key_file.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", key), key
    assert (data / "devreg.sqlite3").is_file()

    # Again, named by option rather than environment: nothing to do, nothing replaced.
    second = run_cli(clean_env(), "init", "--data-dir", str(data))
    assert second.returncode == 0, second.stderr
    assert applied(second.stdout) == 0
    assert key_file.read_text().strip() == key
    assert mode(data) == 0o700 and mode(key_file) == 0o600


# Files of the data directory anyone may read: certificates (public by nature).
PUBLIC_FILES = {"ca.pem", "server.pem"}
SECRET_FILES = {"jwt-signing.key", "ca.key", "server.key", "devreg.sqlite3"}


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """Children started inside inherit `mask` (the most careless operator's: 000)."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def test_secrets_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """With umask 000 (files would be made 0666, directories 0777): the data dir is 0700,
    every secret (signing key, CA key, server key, the SQLite database and its -wal and
    -shm files, an export file) is 0600, and no file there is writable by anyone else."""
    data = tmp_path / "data"
    env = devreg_env(data, None)
    with umask(0):
        done = run_cli(env, "init")
        assert done.returncode == 0, done.stderr
        account = create_account_with(env)
        server = start_server(data, rate_limit=0, mtls=True, est=True)
        try:
            with anonymous_client(server) as client:  # a write: the -wal file is in use
                token = client.get("/login", auth=(account["account_id"], account["live_key"]))
                headers = {"authorization": "Bearer " + token.json()["bearer_token"]}
                assert client.post("/devices", headers=headers).status_code == 201
            files = {path.name: mode(path) for path in data.iterdir()}
            exported = tmp_path / "devices.jsonl"
            done = run_cli(
                env, "export", "devices", "--account", account["account_id"], "--out", str(exported)
            )
            assert done.returncode == 0, done.stderr
        finally:
            server.stop()
    assert mode(data) == 0o700
    assert mode(exported) == 0o600
    assert SECRET_FILES | {"devreg.sqlite3-wal", "devreg.sqlite3-shm"} <= set(files), files
    for name, bits in files.items():
        if name in PUBLIC_FILES:
            assert bits & 0o022 == 0, (name, oct(bits))  # readable, but only ours to change
        else:
            assert bits == 0o600, (name, oct(bits))


def create_account_with(env: dict[str, str]) -> dict[str, str]:
    done = run_cli(env, "account", "create", "--name", "Acme", "--json")
    assert done.returncode == 0, done.stderr
    created: dict[str, str] = json.loads(done.stdout)
    return created


@pytest.mark.postgres
def test_init_on_postgres_is_idempotent(tmp_path: Path, empty_postgres_url: str) -> None:
    data = tmp_path / "data"
    first = run_cli(
        clean_env(), "init", "--data-dir", str(data), "--database-url", empty_postgres_url
    )
    assert first.returncode == 0, first.stderr
    assert applied(first.stdout) >= 1
    assert mode(data) == 0o700 and mode(data / "jwt-signing.key") == 0o600
    assert not (data / "devreg.sqlite3").exists()  # the database is PostgreSQL's
    second = run_cli(devreg_env(data, empty_postgres_url), "init")
    assert second.returncode == 0, second.stderr
    assert applied(second.stdout) == 0
    assert "postgresql://" in second.stdout


# --- account create ---------------------------------------------------------------------


def create(env: dict[str, str], name: str = "Acme") -> dict[str, str]:
    done = run_cli(env, "account", "create", "--name", name, "--json")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout  # nothing but the JSON on stdout
    created: dict[str, str] = json.loads(lines[0])
    assert set(created) == {"account_id", "live_key", "test_key"}, created
    assert ACCOUNT_ID.match(created["account_id"]), created
    assert created["live_key"].startswith("sk_live_") and KEY.match(created["live_key"])
    assert created["test_key"].startswith("sk_test_") and KEY.match(created["test_key"])
    return created


def test_account_create_prints_ids_and_keys_and_stores_no_secret(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = devreg_env(data, None)
    accounts = [create(env, "Acme"), create(env, "Globex")]
    values = [value for account in accounts for value in account.values()]
    assert len(set(values)) == len(values)  # nothing is shared between accounts
    assert mode(data / "jwt-signing.key") == 0o600
    stored = b"".join(p.read_bytes() for p in data.iterdir() if p.name.startswith("devreg.sqlite3"))
    assert b"Globex" in stored  # the files read are the database
    for account in accounts:
        for key in (account["live_key"], account["test_key"]):
            assert key.encode() not in stored, "an API key is stored in the clear"
            assert key.split("_", 2)[2].encode() not in stored, "an API key's secret is stored"


@pytest.mark.postgres
def test_account_create_on_postgres_stores_no_secret(
    tmp_path: Path, empty_postgres_url: str
) -> None:
    import asyncpg

    env = devreg_env(tmp_path / "data", empty_postgres_url)
    account = create(env)

    async def dump() -> str:
        conn = await asyncpg.connect(empty_postgres_url)
        try:
            tables = [
                r[0]
                for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
            ]
            text = []
            for table in tables:
                rows = await conn.fetch(f'SELECT * FROM "{table}"')
                text += [repr(dict(row)) for row in rows]
            return "\n".join(text)
        finally:
            await conn.close()

    stored = asyncio.run(dump())
    assert "Acme" in stored
    for key in (account["live_key"], account["test_key"]):
        assert key not in stored and key.split("_", 2)[2] not in stored


def test_created_keys_log_in_to_a_running_server(server: RunningServer) -> None:
    account = create_account(server, "Initech")
    with anonymous_client(server) as client:
        for key, live in ((account["live_key"], True), (account["test_key"], False)):
            response = client.get("/login", auth=(account["account_id"], key))
            assert response.status_code == 200, response.text
            assert response.json()["live_mode"] is live


def test_account_create_without_json_shows_the_keys_once(tmp_path: Path) -> None:
    done = run_cli(devreg_env(tmp_path / "data", None), "account", "create", "--name", "Acme")
    assert done.returncode == 0, done.stderr
    assert re.search(r"acc_[0-9a-f]{32}", done.stdout)
    assert "sk_live_" in done.stdout and "sk_test_" in done.stdout


def accounts_in(data: Path) -> int:
    path = data / "devreg.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM accounts").fetchone()[0])


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("", ["name", "empty"]),
        ("   ", ["name", "empty"]),
        ("x" * 201, ["name", "200"]),
        ("bad\nname", ["name", "control"]),
    ],
    ids=["empty", "blank", "too long", "control character"],
)
def test_bad_account_name_is_refused(tmp_path: Path, name: str, words: list[str]) -> None:
    data = tmp_path / "data"
    done = run_cli(devreg_env(data, None), "account", "create", "--name", name, "--json")
    assert_clean_failure(done, *words)
    assert accounts_in(data) == 0


def test_missing_name_is_a_usage_error(tmp_path: Path) -> None:
    done = run_cli(devreg_env(tmp_path / "data", None), "account", "create", "--json")
    assert done.returncode != 0
    assert "--name" in done.stderr
    assert done.stdout == ""


# --- bad database URLs ------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["init"], ["account", "create", "--name", "Acme", "--json"], ["serve", "--port", "1"]],
    ids=["init", "account", "serve"],
)
@pytest.mark.parametrize("url", ["mysql://root@localhost/devreg", "redis://localhost:6379/0"])
def test_unsupported_database_url_scheme(tmp_path: Path, command: list[str], url: str) -> None:
    data = tmp_path / "data"
    done = run_cli(clean_env(), *command, "--data-dir", str(data), "--database-url", url)
    assert_clean_failure(done, "database url", url.split(":")[0], "postgresql://", "sqlite://")
    assert accounts_in(data) == 0


@pytest.mark.postgres
@pytest.mark.parametrize(
    "command",
    [["init"], ["account", "create", "--name", "Acme", "--json"]],
    ids=["init", "account"],
)
def test_unreachable_postgres_is_a_clear_failure(
    tmp_path: Path, postgres_url: str, command: list[str]
) -> None:
    missing_database = postgres_url.rpartition("/")[0] + "/devreg_no_such_database"
    done = run_cli(devreg_env(tmp_path / "data", missing_database), *command)
    assert_clean_failure(done, "devreg_no_such_database", "does not exist")
    refused = run_cli(
        devreg_env(tmp_path / "data", "postgresql://postgres@127.0.0.1:1/devreg"), *command
    )
    assert_clean_failure(refused, "connect")


# --- account api versions (dialect F) -----------------------------------------------------


def stored_version(data: Path, account_id: str) -> str:
    with sqlite3.connect(f"file:{data / 'devreg.sqlite3'}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT api_version FROM accounts WHERE id = ?", (bytes.fromhex(account_id[4:]),)
        ).fetchone()
    return str(row[0])


def test_account_create_takes_a_default_api_version(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = devreg_env(data, None)
    plain = create(env, "Acme")
    done = run_cli(env, "account", "create", "--name", "Old", "--api-version",
                   "2024-08-24.zero", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    old = json.loads(done.stdout)
    assert set(old) == {"account_id", "live_key", "test_key"}  # the JSON keeps its keys
    assert stored_version(data, plain["account_id"]) == "2025-09-14.anode"
    assert stored_version(data, old["account_id"]) == "2024-08-24.zero"
    changed = run_cli(env, "account", "set-version", old["account_id"], "2025-09-14.anode")
    assert changed.returncode == 0, changed.stderr
    assert old["account_id"] in changed.stdout and "2025-09-14.anode" in changed.stdout
    assert stored_version(data, old["account_id"]) == "2025-09-14.anode"
    as_json = run_cli(env, "account", "set-version", old["account_id"], "2024-08-24.zero",
                      "--json")  # fmt: skip
    assert json.loads(as_json.stdout) == {
        "account_id": old["account_id"], "api_version": "2024-08-24.zero"
    }  # fmt: skip
    assert stored_version(data, old["account_id"]) == "2024-08-24.zero"


@pytest.mark.parametrize("version", ["2026-01-01.busbar", "yotta", "2025-09-14", ""])
def test_a_version_not_served_is_refused_and_changes_nothing(tmp_path: Path, version: str) -> None:
    data = tmp_path / "data"
    env = devreg_env(data, None)
    made = create(env, "Acme")
    before = accounts_in(data)
    refused = run_cli(env, "account", "create", "--name", "X", "--api-version", version)
    assert_clean_failure(refused, "2024-08-24.zero", "2025-09-14.anode")
    assert accounts_in(data) == before
    refused = run_cli(env, "account", "set-version", made["account_id"], version)
    assert_clean_failure(refused, "2024-08-24.zero", "2025-09-14.anode")
    assert stored_version(data, made["account_id"]) == "2025-09-14.anode"


@pytest.mark.parametrize("account_id", ["acc_" + "0" * 32, "acc_nope", "nope"])
def test_set_version_of_no_such_account_fails_cleanly(tmp_path: Path, account_id: str) -> None:
    env = devreg_env(tmp_path / "data", None)
    create(env, "Acme")
    refused = run_cli(env, "account", "set-version", account_id, "2024-08-24.zero")
    assert_clean_failure(refused, "no such account")
