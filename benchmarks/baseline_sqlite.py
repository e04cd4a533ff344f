"""The raw baseline for dialect F: an ASGI app with no framework and no devreg code, doing
the SQL devreg runs for `PATCH /devices/{id}`, `GET /devices/{id}` and the keyset page
`GET /devices?limit=N&starting_after=ID`, on its own SQLite file (WAL,
`synchronous=NORMAL`: a commit is not fsync'd).

    BASELINE_DB=/tmp/x.sqlite3 uvicorn benchmarks.baseline_sqlite:app \
        --loop uvloop --http httptools --no-access-log

The file is made by `baseline_store.seed`. It serves the one account in the file, live
mode; it checks no credentials.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from benchmarks.baseline_sql import LIST_OLDER, SELECT_DEVICE, SELECT_DEVICE_ANY_STATUS
from benchmarks.baseline_sql import UPDATE_REFERENCE as UPDATE
from benchmarks.baseline_store import connect

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Row = Sequence[Any]


class DeviceUpdate(msgspec.Struct, forbid_unknown_fields=True):
    reference_id: str | None = None


class DeviceOut(msgspec.Struct, omit_defaults=True):
    id: str
    object: str
    live_mode: bool
    reference_id: str
    time_created: str
    account_id: str
    last_seen: str | None = None


class DeviceList(msgspec.Struct):
    object: str
    url: str
    has_more: bool
    data: list[DeviceOut]


def rfc3339(us: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(us // 1_000_000))


def device_out(row: Row) -> DeviceOut:
    return DeviceOut(
        id="dev_" + row[0].hex(),
        object="device",
        live_mode=bool(row[2]),
        reference_id=row[3] or "",
        time_created=rfc3339(row[12]),
        account_id="acc_" + row[1].hex(),
        last_seen=None if row[11] is None else rfc3339(row[11]),
    )


encode = msgspec.json.encode
decode_update = msgspec.json.Decoder(DeviceUpdate).decode
JSON_HEADERS = [(b"content-type", b"application/json")]
NOT_FOUND = b'{"error":"not_found"}'
_state: dict[str, Any] = {}


async def respond(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            conn = connect(os.environ["BASELINE_DB"])
            _state["conn"] = conn
            _state["account"] = conn.execute("SELECT id FROM accounts").fetchone()[0]
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            _state["conn"].close()
            await send({"type": "lifespan.shutdown.complete"})
            return


def device_id_of(text: str) -> bytes | None:
    if not text.startswith("dev_"):
        return None
    try:
        device_id = bytes.fromhex(text[4:])
    except ValueError:
        return None
    return device_id if len(device_id) == 16 else None


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    path: str = scope["path"]
    method: str = scope["method"]
    if path == "/devices" and method == "GET":
        await list_page(scope, send)
        return
    device_id = device_id_of(path[9:]) if path.startswith("/devices/") else None
    if device_id is None:
        await respond(send, 404, NOT_FOUND)
        return
    conn: sqlite3.Connection = _state["conn"]
    account: bytes = _state["account"]
    if method == "GET":
        rows = conn.execute(SELECT_DEVICE, (device_id, account, 1)).fetchall()
    elif method == "PATCH":
        try:
            body = decode_update(await read_body(receive))
        except (msgspec.DecodeError, msgspec.ValidationError):
            await respond(send, 400, b'{"error":"invalid_input"}')
            return
        params = (body.reference_id or None, time.time_ns() // 1000, device_id, account, 1)
        try:
            rows = conn.execute(UPDATE, params).fetchall()
        except sqlite3.IntegrityError:
            await respond(send, 409, b'{"error":"duplicate_reference"}')
            return
    else:
        await respond(send, 405, b'{"error":"method_not_allowed"}')
        return
    if not rows:
        await respond(send, 404, NOT_FOUND)
        return
    await respond(send, 200, encode(device_out(rows[0])))


async def list_page(scope: Scope, send: Send) -> None:
    """Newest first after the cursor: the cursor's (created_at, id), then one row more than
    the page to know `has_more` - devreg's two statements."""
    params = dict(parse_qsl(scope["query_string"].decode()))
    limit = int(params.get("limit", "30"))
    anchor_id = device_id_of(params.get("starting_after", ""))
    conn: sqlite3.Connection = _state["conn"]
    account: bytes = _state["account"]
    anchor = conn.execute(SELECT_DEVICE_ANY_STATUS, (anchor_id, account, 1)).fetchall()
    if not anchor:
        await respond(send, 400, b'{"error":"invalid_cursor"}')
        return
    cursor = (anchor[0][12], anchor[0][0])
    rows = conn.execute(LIST_OLDER, (account, 1, *cursor, limit + 1)).fetchall()
    page = DeviceList("list", "/devices", len(rows) > limit, [device_out(r) for r in rows[:limit]])
    await respond(send, 200, encode(page))
