"""`devreg init | serve | account create | set-version | list | disable | enable | key … |
import | export | certificates revoke | audit …`: the stable command line of PRODUCT.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from devreg.auth.api_keys import new_api_key
from devreg.auth.tokens import load_or_create_signing_key
from devreg.cli import audit, bulk, certificates, keys, users
from devreg.cli.origin import cli_origin
from devreg.core.accounts import build_account, set_default_version
from devreg.core.clock import now_us
from devreg.core.errors import DomainError
from devreg.core.versions import DEFAULT_VERSION, SERVED, check_served
from devreg.server.config import Config, ensure_data_dir, load_config
from devreg.storage import migrate_store, open_store
from devreg.tls.server_cert import ensure_server_certificate


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="data directory (env DEVREG_DATA_DIR; ./devreg-data)")
    parser.add_argument(
        "--database-url",
        help="postgresql://... or sqlite:///path (env DEVREG_DATABASE_URL; SQLite in the data dir)",
    )


def _tls_names(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tls-name",
        action="append",
        dest="tls_names",
        metavar="NAME",
        help="extra DNS name or IP in the server certificate, repeatable (DEVREG_TLS_NAMES)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="devreg", description="Device registry service")
    commands = parser.add_subparsers(dest="command", required=True)

    init = commands.add_parser("init", help="create or upgrade the database and the secrets")
    _common(init)
    _tls_names(init)

    serve = commands.add_parser("serve", help="run the HTTP service")
    _common(serve)
    serve.add_argument("--host", help="address to listen on (env DEVREG_HOST; 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (env DEVREG_PORT; 8080)")
    serve.add_argument(
        "--mtls-port",
        type=int,
        help="client-certificate (mTLS) port, 0 = none (DEVREG_MTLS_PORT; 8443)",
    )
    serve.add_argument(
        "--est-port",
        type=int,
        help="EST (RFC 7030) enrollment port, TLS, 0 = none (DEVREG_EST_PORT; 8444)",
    )
    _tls_names(serve)
    serve.add_argument(
        "--client-ca",
        action="append",
        dest="client_ca_files",
        metavar="FILE",
        help="also trust this CA file for client certificates, repeatable (DEVREG_CLIENT_CA_FILES)",
    )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        dest="trusted_proxies",
        metavar="ADDR",
        help="IP or CIDR of a proxy whose forwarded client certificates are accepted,"
        " repeatable (DEVREG_TRUSTED_PROXIES)",
    )
    serve.add_argument(
        "--public-url",
        help="how clients reach this listener, named in certificates' CRL links"
        " (DEVREG_PUBLIC_URL; http://HOST:PORT)",
    )
    serve.add_argument(
        "--cert-lifetime-days",
        type=int,
        help="lifetime of issued device certificates (DEVREG_CERT_LIFETIME_DAYS; 90)",
    )
    serve.add_argument(
        "--durability",
        metavar="full|normal",
        help="full: a write is on disk before it is answered; normal: it survives a crash"
        " of devreg, not of the machine (DEVREG_DURABILITY; full)",
    )
    serve.add_argument("--workers", type=int, help="processes sharing the port (DEVREG_WORKERS)")
    serve.add_argument("--redis-url", help="share rate limits through Redis (DEVREG_REDIS_URL)")
    serve.add_argument(
        "--redis-down",
        metavar="local|refuse",
        help="while Redis is unreachable: limit per process, or answer 503"
        " (DEVREG_REDIS_DOWN; local)",
    )
    serve.add_argument(
        "--rate-limit",
        type=float,
        help="requests/second per credential, 0 = off (DEVREG_RATE_LIMIT; 100)",
    )
    serve.add_argument("--rate-burst", type=int, help="burst per credential (DEVREG_RATE_BURST)")
    serve.add_argument(
        "--no-access-log",
        action="store_const",
        const=False,
        dest="access_log",
        help="do not log each request (DEVREG_ACCESS_LOG=0)",
    )

    serve.add_argument(
        "--audit-retention-days",
        type=int,
        help="prune change log entries older than this, 0 = never"
        " (DEVREG_AUDIT_RETENTION_DAYS; 400)",
    )

    account = commands.add_parser("account", help="manage accounts")
    account_commands = account.add_subparsers(dest="account_command", required=True)
    create = account_commands.add_parser("create", help="create an account and its two API keys")
    _common(create)
    create.add_argument("--name", required=True)
    create.add_argument(
        "--api-version",
        default=DEFAULT_VERSION,
        help=f"default dialect F version (Flatpeak-Version): one of {', '.join(SERVED)};"
        f" {DEFAULT_VERSION} unless given",
    )
    create.add_argument("--json", action="store_true", help="print JSON")
    set_version = account_commands.add_parser(
        "set-version",
        help="change an account's default dialect F version (holds from the next login)",
    )
    _common(set_version)
    set_version.add_argument("account_id", metavar="ACCOUNT_ID")
    set_version.add_argument("api_version", metavar="VERSION", help=" or ".join(SERVED))
    set_version.add_argument("--json", action="store_true", help="print JSON")
    keys.add_account_commands(account_commands, _common)

    keys.add_commands(commands, _common)
    bulk.add_commands(commands, _common)
    certificates.add_commands(commands, _common)
    audit.add_commands(commands, _common)
    users.add_commands(commands, _common)
    return parser


def _config(args: argparse.Namespace) -> Config:
    keys = (
        "data_dir",
        "database_url",
        "host",
        "port",
        "workers",
        "redis_url",
        "rate_limit",
        "rate_burst",
        "access_log",
        "mtls_port",
        "est_port",
        "tls_names",
        "client_ca_files",
        "trusted_proxies",
        "public_url",
        "cert_lifetime_days",
        "durability",
        "redis_down",
        "audit_retention_days",
    )
    return load_config({key: getattr(args, key, None) for key in keys})


async def _prepare(config: Config) -> list[int]:
    applied = await migrate_store(config.database_url, config.data_dir)
    load_or_create_signing_key(Path(config.data_dir))
    return applied


async def initialise(config: Config) -> list[int]:
    """`devreg init`: the schema, the token signing key, the CA and the server certificate."""
    applied = await _prepare(config)
    # The CA, then the server certificate for the configured names (`serve` checks again).
    ensure_server_certificate(Path(config.data_dir), config.tls_names)
    return applied


async def _set_version(config: Config, account_id: str, version: str) -> None:
    check_served(version)  # before the data directory is touched
    await _prepare(config)
    store = await open_store(config.database_url, config.data_dir)
    try:
        await set_default_version(store, account_id, version, cli_origin())
    finally:
        await store.close()


async def create_account(
    config: Config, name: str, api_version: str = DEFAULT_VERSION
) -> dict[str, str]:
    """`devreg account create`: the account, its default division and profile, its live and
    test keys (the answer holds their secrets, shown once)."""
    check_served(api_version)  # before the data directory is touched
    await _prepare(config)
    now = now_us()
    new = build_account(name, now, api_version)
    live_secret, live_key = new_api_key(new.account.id, True, now)
    test_secret, test_key = new_api_key(new.account.id, False, now)
    store = await open_store(config.database_url, config.data_dir)
    try:
        await store.create_account(
            new.account, [live_key, test_key], new.division, new.profile, cli_origin()
        )
    finally:
        await store.close()
    return {
        "account_id": "acc_" + new.account.id.hex(),
        "live_key": live_secret,
        "test_key": test_secret,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = _config(args)
        ensure_data_dir(config)
        if args.command == "init":
            applied = asyncio.run(initialise(config))
            print(
                f"devreg initialised: {config.database_label}, data dir {config.data_dir}"
                f" ({len(applied)} migration(s) applied)"
            )
        elif args.command == "serve":
            from devreg.server.run import serve

            serve(config)
        elif args.command == "account" and args.account_command == "set-version":
            asyncio.run(_set_version(config, args.account_id, args.api_version))
            if args.json:
                print(json.dumps({"account_id": args.account_id, "api_version": args.api_version}))
            else:
                print(f"account {args.account_id}: default API version {args.api_version}")
        elif args.command == "account" and args.account_command in ("list", "disable", "enable"):
            return keys.run_account(args, config)
        elif args.command == "account":
            created = asyncio.run(create_account(config, args.name, args.api_version))
            if args.json:
                print(json.dumps(created))
            else:
                print(
                    f"account {created['account_id']}\n"
                    f"live key {created['live_key']}\ntest key {created['test_key']}\n"
                    "(the keys are shown only now: store them safely)"
                )
        elif args.command in ("import", "export"):
            return bulk.run(args, config)
        elif args.command == "key":
            return keys.run(args, config)
        elif args.command == "certificates":
            return certificates.run(args, config)
        elif args.command == "audit":
            return audit.run(args, config)
        elif args.command == "user":
            return users.run(args, config)
    except Exception as exc:
        if not _is_operator_error(exc):
            raise
        print(f"devreg: {getattr(exc, 'message', None) or exc}", file=sys.stderr)
        return 1
    return 0


def _is_operator_error(exc: Exception) -> bool:
    """Errors an operator can fix (bad option, unreachable or refusing database): one line
    on stderr and exit 1, not a traceback."""
    if isinstance(exc, ValueError | DomainError | OSError | sqlite3.Error):
        return True
    # The PostgreSQL driver is imported only when a postgresql:// URL is used; its errors
    # (unknown database or role, refused authentication) can only occur once it is.
    asyncpg = sys.modules.get("asyncpg")
    return asyncpg is not None and isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError)


if __name__ == "__main__":
    sys.exit(main())
