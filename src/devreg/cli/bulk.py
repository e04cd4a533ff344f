"""`devreg import devices FILE` and `devreg export devices`: argument handling only; the
line format and its rules live in core/bulk.py and core/bulk_import.py."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from devreg.cli.origin import cli_origin
from devreg.core.bulk import export_devices
from devreg.core.bulk_import import ImportRefused, import_devices
from devreg.core.ids import parse_prefixed
from devreg.server.config import Config
from devreg.storage import migrate_store, open_store


def add_commands(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    account_help = "the account, acc_<32 hex> as `devreg account create` prints it"
    importing = commands.add_parser("import", help="load records from JSON lines")
    kinds = importing.add_subparsers(dest="kind", required=True)
    devices = kinds.add_parser(
        "devices",
        help="import devices, all or nothing",
        description="Import devices from JSON lines (the format `devreg export devices`"
        " writes; every key optional). Any bad line: exit 1, each one reported, nothing"
        " written.",
    )
    devices.add_argument("file", metavar="FILE", help="JSON lines file, - for standard input")
    devices.add_argument("--account", required=True, help=account_help)
    common(devices)
    devices.add_argument("--json", action="store_true", help="print JSON")

    exporting = commands.add_parser("export", help="write records as JSON lines")
    kinds = exporting.add_subparsers(dest="kind", required=True)
    devices = kinds.add_parser(
        "devices",
        help="export devices, oldest first",
        description="Write the account's live and test devices (not deleted ones), oldest"
        " first, one JSON object per line.",
    )
    devices.add_argument("--account", required=True, help=account_help)
    devices.add_argument("--out", metavar="FILE", help="write here (mode 0600), not to stdout")
    common(devices)


def run(args: argparse.Namespace, config: Config) -> int:
    account_id = parse_prefixed("acc", args.account)
    if account_id is None:
        raise ValueError(f"--account must be acc_ and 32 lowercase hex digits: {args.account!r}")
    if args.command == "import":
        return _import(args, config, account_id)
    if args.out is None:
        asyncio.run(_export(config, account_id, sys.stdout.buffer))
    else:
        with private_file(Path(args.out)) as out:
            asyncio.run(_export(config, account_id, out))
    return 0


def _import(args: argparse.Namespace, config: Config, account_id: bytes) -> int:
    started = time.monotonic()
    try:
        if args.file == "-":
            count = asyncio.run(_import_from(config, account_id, sys.stdin.buffer))
        else:
            with open(args.file, "rb") as lines:
                count = asyncio.run(_import_from(config, account_id, lines))
    except ImportRefused as refused:
        for error in refused.errors:
            print(f"line {error.line}: {error.message}", file=sys.stderr)
        if refused.bad_lines > len(refused.errors):
            print(f"... and {refused.bad_lines - len(refused.errors)} more", file=sys.stderr)
        print(f"devreg: {refused.message}", file=sys.stderr)
        return 1
    seconds = round(time.monotonic() - started, 3)
    if args.json:
        print(json.dumps({"imported": count, "seconds": seconds}))
    else:
        print(f"imported {count} devices")
    return 0


async def _import_from(config: Config, account_id: bytes, lines: BinaryIO) -> int:
    await migrate_store(config.database_url, config.data_dir)
    store = await open_store(config.database_url, config.data_dir)
    try:
        return await import_devices(
            store, account_id, lines, quotas=config.quotas, origin=cli_origin()
        )
    finally:
        await store.close()


async def _export(config: Config, account_id: bytes, out: BinaryIO) -> None:
    await migrate_store(config.database_url, config.data_dir)
    store = await open_store(config.database_url, config.data_dir)
    try:
        async for block in export_devices(store, account_id):
            out.write(block)
        out.flush()
    finally:
        await store.close()


@contextmanager
def private_file(path: Path) -> Iterator[BinaryIO]:
    """A new file beside `path`, owner-only (device data), renamed over `path` once it is
    complete and on disk: a failed or interrupted export leaves no partial file."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
