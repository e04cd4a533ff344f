"""`devreg key create | list | revoke | rotate` and `devreg account list | disable | enable`:
API keys and accounts from the command line, through the same use cases as dialect D's
`/iot/api/v2/api-key` (core/api_keys.py, core/accounts.py). `revoke`, `rotate` and
`disable` return once every devreg process refuses what they ended."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from devreg.cli.origin import cli_origin
from devreg.core.accounts import parse_account_id, set_account_disabled
from devreg.core.api_keys import (
    DEFAULT_OVERLAP_HOURS,
    KeyStatus,
    account_keys,
    create_key,
    key_status,
    revoke_key,
    rotate_key,
)
from devreg.core.clock import now_us, render_rfc3339
from devreg.core.errors import InvalidInput, NotFound
from devreg.core.ids import parse_uuid, render_uuid, render_uuids
from devreg.core.records import Account, ApiKey, Scope
from devreg.core.store import DeviceStore
from devreg.server.config import Config
from devreg.storage import migrate_store, open_store

T = TypeVar("T")
Common = Callable[[argparse.ArgumentParser], None]


def add_commands(commands: argparse._SubParsersAction, common: Common) -> None:  # type: ignore[type-arg]
    key = commands.add_parser("key", help="manage API keys")
    actions = key.add_subparsers(dest="key_command", required=True)
    create = actions.add_parser("create", help="make an API key (its secret is shown once)")
    create.add_argument("--account", required=True, help="acc_<32 hex>")
    create.add_argument("--mode", required=True, choices=("live", "test"))
    create.add_argument("--name", required=True)
    create.add_argument("--scope", choices=[s.value for s in Scope], default=Scope.WRITE.value)
    create.add_argument("--expires-in", type=int, metavar="DAYS", help="1-3650 days; none: never")
    create.add_argument(
        "--division",
        action="append",
        metavar="DIVISION_ID",
        help="limit the key to this division's devices, profiles and certificates (repeat for"
        " several; none: every division)",
    )
    listing = actions.add_parser("list", help="an account's keys, never their secrets")
    listing.add_argument("--account", required=True, help="acc_<32 hex>")
    revoke = actions.add_parser(
        "revoke", help="revoke a key: refused everywhere, tokens made from it too, on return"
    )
    revoke.add_argument("key_id", metavar="KEY_ID", help="the key's UUID (key list)")
    rotate = actions.add_parser(
        "rotate", help="make a key's successor and set the old one to expire after an overlap"
    )
    rotate.add_argument("key_id", metavar="KEY_ID")
    rotate.add_argument(
        "--overlap-hours",
        type=float,
        default=DEFAULT_OVERLAP_HOURS,
        help=f"how long the old key keeps working, 0-720 (default {DEFAULT_OVERLAP_HOURS:g};"
        " 0: revoked now)",
    )
    for parser in (create, listing, revoke, rotate):
        common(parser)
        parser.add_argument("--json", action="store_true", help="print JSON")


def add_account_commands(actions: argparse._SubParsersAction, common: Common) -> None:  # type: ignore[type-arg]
    listing = actions.add_parser("list", help="every account and its state")
    disable = actions.add_parser(
        "disable", help="refuse the account's keys, tokens and certificates (nothing deleted)"
    )
    enable = actions.add_parser("enable", help="accept a disabled account's credentials again")
    for parser in (disable, enable):
        parser.add_argument("account_id", metavar="ACCOUNT_ID")
    for parser in (listing, disable, enable):
        common(parser)
        parser.add_argument("--json", action="store_true", help="print JSON")


def _time(us: int | None) -> str | None:
    return None if us is None else render_rfc3339(us)


def key_summary(key: ApiKey, now: int) -> dict[str, Any]:
    """A key as `key list` prints it: never its secret or its hash. `last_used` is at most a
    minute late (each process flushes the times it saw once a minute)."""
    return {
        "key_id": render_uuid(key.id),
        "account_id": "acc_" + key.account_id.hex(),
        "name": key.name,
        "mode": "live" if key.live_mode else "test",
        "scope": key.scope.value,
        "prefix": key.prefix,
        "status": key_status(key, now).value,
        "created": _time(key.created_at),
        "last_used": _time(key.last_used_at),
        "expires_at": _time(key.expires_at),
        "revoked_at": _time(key.revoked_at),
        "rotated_from": None if key.rotated_from is None else render_uuid(key.rotated_from),
        "division_ids": render_uuids(key.divisions),
    }


def account_summary(account: Account, keys: list[ApiKey], now: int) -> dict[str, Any]:
    usable = [key for key in keys if key_status(key, now) is KeyStatus.ACTIVE]
    return {
        "account_id": "acc_" + account.id.hex(),
        "name": account.name,
        "status": "ACTIVE" if account.disabled_at is None else "DISABLED",
        "created": _time(account.created_at),
        "disabled_at": _time(account.disabled_at),
        "api_version": account.api_version,
        "keys": {
            "live": sum(1 for key in usable if key.live_mode),
            "test": sum(1 for key in usable if not key.live_mode),
        },
    }


def _division_ids(texts: list[str] | None) -> list[bytes] | None:
    if texts is None:
        return None
    found = [parse_uuid(text) for text in texts]
    if None in found:
        raise InvalidInput("--division must be a division's UUID", "division_ids")
    return [division_id for division_id in found if division_id is not None]


def _key_id(text: str) -> bytes:
    key_id = parse_uuid(text)
    if key_id is None:
        raise NotFound(f"API key with id {text[:64]} does not exist")
    return key_id


async def _with_store(config: Config, work: Callable[[DeviceStore], Awaitable[T]]) -> T:
    await migrate_store(config.database_url, config.data_dir)
    store = await open_store(config.database_url, config.data_dir)
    try:
        return await work(store)
    finally:
        await store.close()


def run(args: argparse.Namespace, config: Config) -> int:
    origin = cli_origin()
    command = args.key_command

    async def work(store: DeviceStore) -> dict[str, Any]:
        if command == "create":
            secret, key = await create_key(
                store, parse_account_id(args.account), args.mode == "live", args.name, origin,
                scope=Scope(args.scope), expires_in_days=args.expires_in,
                division_ids=_division_ids(args.division),
            )  # fmt: skip
            return {"secret": secret, **key_summary(key, now_us())}
        if command == "list":
            keys = await account_keys(store, parse_account_id(args.account))
            return {"keys": [key_summary(key, now_us()) for key in keys]}
        if command == "revoke":
            return key_summary(await revoke_key(store, _key_id(args.key_id), origin), now_us())
        secret, new, old = await rotate_key(
            store, _key_id(args.key_id), origin, overlap_hours=args.overlap_hours
        )
        return {
            "secret": secret,
            **key_summary(new, now_us()),
            "replaces": render_uuid(old.id),
            "old_key_ends": _time(old.revoked_at or old.expires_at),  # revoked with 0 hours
        }

    out = asyncio.run(_with_store(config, work))
    _print(args, out)
    return 0


def run_account(args: argparse.Namespace, config: Config) -> int:
    origin = cli_origin()
    command = args.account_command

    async def work(store: DeviceStore) -> dict[str, Any]:
        if command == "list":
            accounts = await store.accounts()
            now = now_us()
            return {
                "accounts": [
                    account_summary(account, await store.api_keys(account.id), now)
                    for account in accounts
                ]
            }
        account = await set_account_disabled(store, args.account_id, command == "disable", origin)
        return account_summary(account, await store.api_keys(account.id), now_us())

    out = asyncio.run(_with_store(config, work))
    _print(args, out)
    return 0


def _print(args: argparse.Namespace, out: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(out))
        return
    rows = out.get("keys") if "keys" in out and isinstance(out["keys"], list) else None
    for item in rows if rows is not None else out.get("accounts", [out]):
        print("  ".join(f"{name}={value}" for name, value in item.items() if value is not None))
    if "secret" in out:
        print("(the secret is shown only now: store it safely)")
