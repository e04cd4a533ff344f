"""`devreg user create | list | disable | enable | set-password`: the console's operators
from the command line, through the use cases of core/operators.py. A password is never an
argument (it would be in the shell's history and in `ps`): it is read from stdin when stdin
is not a terminal, else prompted for twice without echo."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devreg.auth.totp import load_or_create_totp_key
from devreg.cli.origin import cli_origin
from devreg.core.accounts import parse_account_id
from devreg.core.clock import render_rfc3339
from devreg.core.errors import InvalidInput
from devreg.core.ids import render_uuid
from devreg.core.operator_store import Operator
from devreg.core.operators import Operators
from devreg.core.roles import Role
from devreg.server.config import Config
from devreg.storage import migrate_store, open_store
from devreg.storage.operators import operator_store

Common = Callable[[argparse.ArgumentParser], None]


def add_commands(commands: argparse._SubParsersAction, common: Common) -> None:  # type: ignore[type-arg]
    user = commands.add_parser("user", help="manage console users (operators)")
    actions = user.add_subparsers(dest="user_command", required=True)
    create = actions.add_parser(
        "create", help="make a user; the password is read from stdin or prompted for"
    )
    create.add_argument("--email", required=True)
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.add_argument(
        "--account", help="acc_<32 hex>; none: a platform administrator (admin, all accounts)"
    )
    listing = actions.add_parser("list", help="every user, never a password or its hash")
    disable = actions.add_parser("disable", help="refuse the user's sign-in; end its sessions")
    enable = actions.add_parser("enable", help="let a disabled user sign in again")
    password = actions.add_parser(
        "set-password", help="a new password (stdin or prompt); ends the user's sessions"
    )
    for parser in (disable, enable, password):
        parser.add_argument("user", metavar="EMAIL_OR_ID")
    for parser in (create, listing, disable, enable, password):
        common(parser)
        parser.add_argument("--json", action="store_true", help="print JSON")


def read_password() -> str:
    """stdin's first line when it is not a terminal; else asked twice, not echoed."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise InvalidInput("the two passwords differ", "password")
    return first


def user_summary(operator: Operator) -> dict[str, Any]:
    """A user as the CLI prints it: never the password's hash or the TOTP secret."""
    return {
        "user_id": render_uuid(operator.id),
        "email": operator.email,
        "role": operator.role.value,
        "account_id": None if operator.account_id is None else "acc_" + operator.account_id.hex(),
        "status": "ACTIVE" if operator.disabled_at is None else "DISABLED",
        "totp": operator.totp_enabled_at is not None,
        "created": render_rfc3339(operator.created_at),
        "password_changed": render_rfc3339(operator.password_changed_at),
        "disabled_at": None
        if operator.disabled_at is None
        else render_rfc3339(operator.disabled_at),
    }


def run(args: argparse.Namespace, config: Config) -> int:
    origin = cli_origin()
    command = args.user_command
    # Read before the database is touched: a refused password changes nothing.
    password = read_password() if command in ("create", "set-password") else None

    async def work() -> dict[str, Any]:
        await migrate_store(config.database_url, config.data_dir)
        store = await open_store(config.database_url, config.data_dir)
        try:
            users = Operators(operator_store(store), load_or_create_totp_key(Path(config.data_dir)))
            if command == "create":
                assert password is not None
                account = None if args.account is None else parse_account_id(args.account)
                made = await users.create(args.email, args.role, account, password, origin)
                return user_summary(made)
            if command == "list":
                return {"users": [user_summary(op) for op in await users.list_operators()]}
            target = await users.find(args.user)
            if command == "set-password":
                assert password is not None
                return user_summary(await users.set_password(target.id, password, origin))
            changed = await users.set_disabled(target.id, command == "disable", origin)
            return user_summary(changed)
        finally:
            await store.close()

    out = asyncio.run(work())
    if args.json:
        print(json.dumps(out))
    else:
        for item in out.get("users", [out]):
            print("  ".join(f"{name}={value}" for name, value in item.items() if value is not None))
    return 0
