"""`devreg user …` run as the real executable on both stores: passwords from stdin (or a
prompt on a terminal), never an argument, never printed; sessions ended by disable and
set-password (checked through the core on the same database)."""

from __future__ import annotations

import json
import os
import pty
import secrets
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from devreg.auth.totp import load_or_create_totp_key
from devreg.core.errors import Unauthenticated
from devreg.core.operators import Operators
from devreg.storage import open_store
from devreg.storage.base import SqlDeviceStore
from devreg.storage.operators import operator_store
from tests.support.server import DEVREG, devreg_env

PASSWORD = "correct horse battery"


def user_cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DEVREG, "user", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def env(backend: str | None, tmp_path: Path) -> dict[str, str]:
    return devreg_env(tmp_path / "data", backend)


@pytest.fixture
def email() -> str:
    return f"Ops.{secrets.token_hex(4)}@Example.com"  # PostgreSQL's database is shared


async def sign_in(env: dict[str, str], email: str, password: str) -> str:
    """A session through the core, on the CLI's database and key file."""
    data = Path(env["DEVREG_DATA_DIR"])
    store = await open_store(env.get("DEVREG_DATABASE_URL"), data)
    try:
        assert isinstance(store, SqlDeviceStore)
        users = Operators(operator_store(store), load_or_create_totp_key(data))
        return (await users.authenticate(email, password)).token
    finally:
        await store.close()


async def session_ok(env: dict[str, str], token: str) -> bool:
    data = Path(env["DEVREG_DATA_DIR"])
    store = await open_store(env.get("DEVREG_DATABASE_URL"), data)
    try:
        assert isinstance(store, SqlDeviceStore)
        users = Operators(operator_store(store), load_or_create_totp_key(data))
        try:
            await users.session(token)
        except Unauthenticated:
            return False
        return True
    finally:
        await store.close()


async def test_create_list_disable_enable(env: dict[str, str], email: str) -> None:
    done = user_cli(env, "create", "--email", email, "--role", "admin", "--json",
                    stdin=PASSWORD + "\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert (made["email"], made["role"], made["account_id"], made["status"]) == (
        email.casefold(), "admin", None, "ACTIVE",
    )  # fmt: skip
    assert "hash" not in done.stdout and PASSWORD not in done.stdout + done.stderr
    listed = json.loads(user_cli(env, "list", "--json").stdout)["users"]
    assert made in listed
    token = await sign_in(env, email.upper(), PASSWORD)
    assert await session_ok(env, token)

    done = user_cli(env, "disable", email, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "DISABLED"
    assert not await session_ok(env, token)  # ended at once
    with pytest.raises(Unauthenticated):
        await sign_in(env, email, PASSWORD)
    done = user_cli(env, "enable", made["user_id"], "--json")  # by id too
    assert json.loads(done.stdout)["status"] == "ACTIVE"
    await sign_in(env, email, PASSWORD)


async def test_set_password_from_stdin_ends_sessions(env: dict[str, str], email: str) -> None:
    assert user_cli(env, "create", "--email", email, "--role", "admin",
                    stdin=PASSWORD + "\n").returncode == 0  # fmt: skip
    token = await sign_in(env, email, PASSWORD)
    done = user_cli(env, "set-password", email, stdin="another long password\n")
    assert done.returncode == 0, done.stderr
    assert "another long password" not in done.stdout + done.stderr
    assert not await session_ok(env, token)
    with pytest.raises(Unauthenticated):
        await sign_in(env, email, PASSWORD)
    await sign_in(env, email, "another long password")


def test_user_of_an_account(env: dict[str, str], email: str) -> None:
    made = subprocess.run(
        [DEVREG, "account", "create", "--name", "Acme", "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    account = json.loads(made.stdout)["account_id"]
    done = user_cli(env, "create", "--email", email, "--role", "viewer", "--account", account,
                    "--json", stdin=PASSWORD + "\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["account_id"] == account


def test_refusals_are_one_line_and_change_nothing(env: dict[str, str], email: str) -> None:
    for args, stdin, words in (
        (("create", "--email", email, "--role", "admin"), "short\n", "12 characters"),
        (("create", "--email", email, "--role", "viewer"), PASSWORD + "\n", "account"),
        (("create", "--email", "nope", "--role", "admin"), PASSWORD + "\n", "email"),
        (("disable", "nobody@example.com"), "", "no such user"),
    ):
        done = user_cli(env, *args, stdin=stdin)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done
        assert done.stderr.startswith("devreg: ") and words in done.stderr.lower(), done.stderr
        assert PASSWORD not in done.stderr
    assert all(
        user["email"] != email.casefold()
        for user in json.loads(user_cli(env, "list", "--json").stdout)["users"]
    )
    done = user_cli(env, "create", "--email", email, "--role", "admin", "--password", PASSWORD)
    assert done.returncode == 2  # no such option: a password is never an argument


def test_a_terminal_is_asked_twice(tmp_path: Path, email: str) -> None:
    env = devreg_env(tmp_path / "data", None)

    def on_terminal(*args: str, answers: list[str]) -> tuple[int, str]:
        pid, fd = pty.fork()
        if pid == 0:  # the child: stdin, stdout and stderr are the terminal
            os.execve(DEVREG, [DEVREG, "user", *args], env)  # noqa: S606
        output, answered, deadline = b"", 0, time.monotonic() + 30
        while time.monotonic() < deadline:
            if not select.select([fd], [], [], 0.5)[0]:
                continue
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the terminal closed: the command ended
                break
            if not chunk:
                break
            output += chunk
            if answered < len(answers) and output.count(b"Password") > answered:
                os.write(fd, (answers[answered] + "\n").encode())
                answered += 1
        else:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), output.decode(errors="replace")

    code, out = on_terminal("create", "--email", email, "--role", "admin",
                            answers=[PASSWORD, "something else!"])  # fmt: skip
    assert code == 1 and "differ" in out and PASSWORD not in out
    code, out = on_terminal("create", "--email", email, "--role", "admin",
                            answers=[PASSWORD, PASSWORD])  # fmt: skip
    assert code == 0 and PASSWORD not in out, out
