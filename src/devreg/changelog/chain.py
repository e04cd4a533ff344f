"""The hash chain: each entry's hash covers its content and the previous entry's hash, so
an entry edited, removed, inserted or moved breaks the chain from there on.

It protects against a change made to the log's rows by someone without devreg's code
(a hand-made UPDATE or DELETE, a restored old backup spliced in). It does not protect
against someone who can rewrite the whole chain from the edit on; keeping the head hash
(`devreg audit export` prints it) somewhere they cannot reach closes that.

Truncation at either end cannot be detected from the database alone: whoever can write
it can delete the newest entries and set the head to the last one kept, or delete the
oldest entries and set the pruned mark (`pruned_seq`, `pruned_hash`) to the last one
deleted, and the chain that is left verifies. Only a head kept elsewhere (for the newest
end) or a known retention (for the oldest: `audit verify` warns when the oldest kept
entry is younger than the retention would have pruned to) tells.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable

import msgspec

from devreg.changelog.entries import Entry, Head

GENESIS = bytes(32)  # the previous hash of the very first entry
_encode = msgspec.json.encode


def content(entry: Entry) -> bytes:
    """The canonical bytes of everything an entry says but its hashes."""
    return _encode(
        [
            entry.seq, entry.time,
            None if entry.account_id is None else entry.account_id.hex(),
            entry.live_mode, entry.actor_kind.value, entry.actor_id, entry.request_id,
            entry.action, entry.object_type, entry.object_id.hex(), entry.object_version,
            entry.before, entry.after,
        ]
    )  # fmt: skip


def entry_hash(prev_hash: bytes, entry: Entry) -> bytes:
    return hashlib.sha256(prev_hash + content(entry)).digest()


class Broken(msgspec.Struct, frozen=True):
    """Where the chain first fails, and how."""

    seq: int
    problem: str


async def verify(entries: AsyncIterable[Entry], head: Head) -> tuple[int, Broken | None]:
    """Walk every stored entry oldest first (all of them, not only those after the pruned
    mark: what is stored is what is served). Returns how many were checked and the first
    break: an entry still stored at or below the pruned mark, an entry whose hash is not
    its content's (edited), whose previous hash is not the entry before it (removed,
    inserted, moved; the oldest kept entry's must be the pruned mark's hash), a gap in
    seq, or a head that is not the last entry (entries removed at the end)."""
    expected_seq, expected_prev = head.pruned_seq + 1, head.pruned_hash
    checked = 0
    async for entry in entries:
        if entry.seq <= head.pruned_seq:  # pruning deletes what it marks: this was not it
            return checked, Broken(
                entry.seq, f"entry {entry.seq} is still stored below the pruned mark"
            )
        if entry.seq != expected_seq:
            missing = entry.seq > expected_seq
            return checked, Broken(
                expected_seq if missing else entry.seq,
                f"entry {expected_seq} is missing"
                if missing
                else f"entry {entry.seq} is out of order",
            )
        if entry.prev_hash != expected_prev:
            return checked, Broken(entry.seq, "its previous hash is not the entry before it")
        if entry_hash(entry.prev_hash, entry) != entry.hash:
            return checked, Broken(entry.seq, "its content does not match its hash (edited)")
        checked += 1
        expected_seq, expected_prev = entry.seq + 1, entry.hash
    if expected_seq - 1 != head.seq or expected_prev != head.hash:
        return checked, Broken(
            expected_seq, f"the log ends at {expected_seq - 1} but its head is {head.seq}"
        )
    return checked, None
