"""`devreg certificates revoke --account ACC --device UUID`: revoke every certificate of a
device from the command line (a stolen device, a leaked key), through the same rule as
`PUT /iot/api/v2/device/{id}/certificate/revoke` (pki/revocation.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable

from devreg.cli.origin import cli_origin
from devreg.core.clock import now_us
from devreg.core.errors import NotFound
from devreg.core.ids import parse_prefixed, parse_uuid, render_uuid
from devreg.core.records import Caller, Certificate
from devreg.pki.revocation import REASONS, revoke_device_certificates
from devreg.server.config import Config
from devreg.storage import migrate_store, open_store

# Who revoked, as the access log and limits name credentials.
OPERATOR_CREDENTIAL = "operator:cli"


def add_commands(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    certificates = commands.add_parser("certificates", help="manage device certificates")
    actions = certificates.add_subparsers(dest="certificates_command", required=True)
    revoke = actions.add_parser(
        "revoke",
        help="revoke every certificate of a device",
        description="Revoke every unrevoked certificate of the device at once; refused on"
        " the client-auth listener from then on and listed in the CRL.",
    )
    revoke.add_argument("--account", required=True, help="acc_<32 hex>, the device's account")
    revoke.add_argument("--device", required=True, help="the device's UUID")
    revoke.add_argument(
        "--reason",
        default="keyCompromise",
        help=f"RFC 5280 reason, one of {', '.join(REASONS)} (default keyCompromise)",
    )
    common(revoke)
    revoke.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace, config: Config) -> int:
    account_id = parse_prefixed("acc", args.account)
    if account_id is None:
        raise ValueError(f"--account must be acc_ and 32 lowercase hex digits: {args.account!r}")
    device_id = parse_uuid(args.device)
    if device_id is None:
        raise ValueError(f"--device must be a UUID: {args.device!r}")
    revoked = asyncio.run(_revoke(config, account_id, device_id, args.reason))
    if args.json:
        print(json.dumps({"revoked": [_summary(cert) for cert in revoked]}))
    else:
        for cert in revoked:
            print(f"revoked {render_uuid(cert.id)} serial {cert.serial}")
        print(f"{len(revoked)} certificate(s) revoked")
    return 0


def _summary(cert: Certificate) -> dict[str, str]:
    return {"certificate_id": render_uuid(cert.id), "serial_number": cert.serial}


async def _revoke(
    config: Config, account_id: bytes, device_id: bytes, reason: str
) -> list[Certificate]:
    await migrate_store(config.database_url, config.data_dir)
    store = await open_store(config.database_url, config.data_dir)
    origin = cli_origin()
    try:
        for live_mode in (True, False):  # the operator names the device, not its mode
            caller = Caller(
                account_id=account_id, live_mode=live_mode, credential_id=OPERATOR_CREDENTIAL,
                actor=origin.actor, request_id=origin.request_id,
            )  # fmt: skip
            try:
                return await revoke_device_certificates(store, caller, device_id, reason, now_us())
            except NotFound:
                continue
        raise NotFound(f"No device {render_uuid(device_id)} in acc_{account_id.hex()}")
    finally:
        await store.close()
