"""An entry as the outside sees it, in `devreg audit export` (JSON lines) and in dialect
D's account log: everything stored, the records as stored, the hashes in hex (so that an
auditor can check the chain with nothing but SHA-256: changelog/chain.py says how)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from devreg.changelog.entries import Entry
from devreg.core.clock import datetime_of_us
from devreg.core.ids import render_uuid


class ActorOut(msgspec.Struct):
    kind: str
    id: str


class EntryOut(msgspec.Struct):
    seq: int
    time: datetime  # RFC 3339 to the microsecond
    time_us: int  # the same, as stored and hashed
    account_id: str | None
    live_mode: bool | None
    actor: ActorOut
    request_id: str
    action: str
    object_type: str
    object_id: str
    object_version: int | None
    before: msgspec.Raw | None
    after: msgspec.Raw | None
    prev_hash: str
    hash: str


def actor_of(entry: Entry) -> ActorOut:
    return ActorOut(kind=entry.actor_kind.value, id=entry.actor_id)


def entry_out(entry: Entry) -> EntryOut:
    return EntryOut(
        seq=entry.seq, time=datetime_of_us(entry.time), time_us=entry.time,
        account_id=None if entry.account_id is None else render_uuid(entry.account_id),
        live_mode=entry.live_mode, actor=actor_of(entry), request_id=entry.request_id,
        action=entry.action, object_type=entry.object_type,
        object_id=render_uuid(entry.object_id), object_version=entry.object_version,
        before=None if entry.before is None else msgspec.Raw(entry.before.encode()),
        after=None if entry.after is None else msgspec.Raw(entry.after.encode()),
        prev_hash=entry.prev_hash.hex(), hash=entry.hash.hex(),
    )  # fmt: skip
