"""`devreg audit export` (the change log as JSON lines, streamed) and `devreg audit verify`
(the hash chain, walked: exit 1 naming the first entry changed, removed or inserted)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import msgspec

from devreg.changelog.export import entry_out
from devreg.changelog.service import DEFAULT_RETENTION_DAYS, ChangeLogService, Verification
from devreg.cli.bulk import private_file
from devreg.core.clock import datetime_of_us, now_us
from devreg.core.ids import parse_prefixed
from devreg.dialect_d.params import rfc3339_param
from devreg.server.config import Config
from devreg.storage import migrate_store, open_store
from devreg.storage.base import SqlDeviceStore

_encode = msgspec.json.Encoder().encode


def add_commands(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    audit = commands.add_parser("audit", help="read and check the change log")
    actions = audit.add_subparsers(dest="audit_command", required=True)
    export = actions.add_parser(
        "export",
        help="write the change log as JSON lines",
        description="Every entry (or those after --since), oldest first, one JSON object a"
        " line; then the chain's head on stderr: keep it somewhere else, and a later"
        " `audit verify` proves nothing before it was rewritten.",
    )
    export.add_argument(
        "--since", help="entries after this seq, or from this RFC 3339 time on (default: all)"
    )
    export.add_argument("--account", help="acc_<32 hex>: only this account's entries")
    export.add_argument("--out", help="write to this file (mode 0600) instead of stdout")
    common(export)
    verify = actions.add_parser("verify", help="check the change log's hash chain")
    common(verify)
    verify.add_argument("--json", action="store_true", help="print JSON")
    verify.add_argument(
        "--retention-days", type=int, default=DEFAULT_RETENTION_DAYS,
        help="the retention the log is pruned with (--audit-retention-days; default"
        f" {DEFAULT_RETENTION_DAYS}, 0 = keep for ever): warn when the oldest kept entry is"
        " younger than it prunes, a sign of entries removed from the start",
    )  # fmt: skip


def run(args: argparse.Namespace, config: Config) -> int:
    if args.audit_command == "export":
        account = None
        if args.account is not None:
            account = parse_prefixed("acc", args.account)
            if account is None:
                raise ValueError(f"--account must be acc_ and 32 hex digits: {args.account!r}")
        if args.out is None:
            return asyncio.run(_export(config, args.since, account, sys.stdout.buffer))
        # A new file (never one already there, nor a symlink's target), renamed over --out.
        with private_file(Path(args.out)) as stream:
            return asyncio.run(_export(config, args.since, account, stream))
    if args.retention_days < 0:
        raise ValueError(f"--retention-days must not be negative: {args.retention_days}")
    verification = asyncio.run(_verify(config))
    head, broken = verification.head, verification.broken
    warning = verification.truncation_warning(args.retention_days, now_us())
    oldest = verification.oldest_time
    if args.json:
        report = {
            "verified": broken is None, "checked": verification.checked, "head_seq": head.seq,
            "head_hash": head.hash.hex(), "pruned_seq": head.pruned_seq,
            "oldest_seq": verification.oldest_seq,
            "oldest_time": None if oldest is None else datetime_of_us(oldest),
            "broken_seq": None if broken is None else broken.seq,
            "problem": None if broken is None else broken.problem,
            "warning": warning,
        }  # fmt: skip
        print(_encode(report).decode())
    elif broken is None:
        print(
            f"change log verified: {verification.checked} entries, head seq {head.seq}"
            f" hash {head.hash.hex()} (pruned through seq {head.pruned_seq})"
        )
    if warning is not None:
        print(f"devreg: warning: {warning}", file=sys.stderr)
    if broken is not None:
        print(f"devreg: the change log is broken at entry {broken.seq}: {broken.problem}",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


async def _open(config: Config) -> SqlDeviceStore:
    await migrate_store(config.database_url, config.data_dir)
    return await open_store(config.database_url, config.data_dir)


async def _export(config: Config, since: str | None, account: bytes | None, out: BinaryIO) -> int:
    store = await _open(config)
    log = ChangeLogService(store, store)
    try:
        after_seq = 0
        if since is not None:
            if since.isascii() and since.isdigit():
                after_seq = int(since)
            else:
                first = await store.first_seq_at(rfc3339_param(since, "--since"))
                after_seq = (first - 1) if first is not None else (await store.change_head()).seq
        head = await store.change_head()  # entries after it are not exported this time
        count = 0
        async for entry in log.export(after_seq=after_seq, account_id=account):
            if entry.seq > head.seq:
                break
            out.write(_encode(entry_out(entry)) + b"\n")
            count += 1
        out.flush()
        print(f"exported {count} entries; head seq {head.seq} hash {head.hash.hex()}",
              file=sys.stderr)  # fmt: skip
    finally:
        await store.close()
    return 0


async def _verify(config: Config) -> Verification:
    store = await _open(config)
    try:
        return await ChangeLogService(store, store).verify()
    finally:
        await store.close()
