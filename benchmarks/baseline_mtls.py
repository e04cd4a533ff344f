"""The raw TLS baseline for dialect D over mutual TLS: an ASGI app with no framework and no
devreg code, doing the SQL devreg runs for a device's own `PUT` and `GET
/iot/api/v2/device/{id}`, on the baselines' SQLite file (WAL, `synchronous=NORMAL`).

    BASELINE_DB=/tmp/x.sqlite3 uvicorn benchmarks.baseline_mtls:app \
        --http benchmarks.baseline_mtls:PeerCertProtocol --loop uvloop --no-access-log \
        --ssl-certfile server.pem --ssl-keyfile server.key --ssl-ca-certs ca.pem \
        --ssl-cert-reqs 2

uvicorn verifies the client certificate (`--ssl-cert-reqs 2` = required, against the
`--ssl-ca-certs` CA) but does not put it in the request scope: `PeerCertProtocol` is the
smallest glue that does, its SHA-256 read once per connection.

The statements, in devreg's order (src/devreg/dialect_d/routes.py, core/devices.py,
core/profiles.py, storage/base.py, as of commit b8ad706), for a PUT: the certificate by
fingerprint; the device by id; its profile, fields and division (`ProfileService.profile`);
in one transaction the device's UPDATE ... RETURNING, the DELETE of its values and an
INSERT per value; the answer is made from what was written. For a GET: certificate,
device, the `last_seen` UPDATE, then profile, fields, division and values
(`DeviceService.views`). When devreg's sequence changes, change these with it.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from benchmarks import baseline_sql as q
from benchmarks.baseline_store import connect

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Row = Sequence[Any]
BASE = "/iot/api/v2/device/"
MAX_VALUE = 1024


class PeerCertProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus the client certificate's SHA-256 in the scope."""

    fingerprint: bytes | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self.fingerprint = hashlib.sha256(der).digest() if der else None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {"tls": {"client_cert_sha256": self.fingerprint}}


class FieldValueIn(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    value: str


class DeviceUpdateIn(msgspec.Struct, forbid_unknown_fields=True):
    device_identifier: str | None = None
    fields: list[FieldValueIn] = []


class Named(msgspec.Struct):
    id: str
    name: str


class FieldValueOut(msgspec.Struct):
    id: str
    name: str
    value: str
    mandatory: bool


class DeviceOut(msgspec.Struct):
    """Seed 003's device, as devreg renders it."""

    id: str
    account_id: str
    division: Named
    device_identifier: str
    device_profile: Named
    created: str
    updated: str
    status: str
    fields: list[FieldValueOut]
    device_api_allow_read: bool
    device_api_allow_write: bool
    device_api_allow_renew_certificate: bool
    last_seen: str | None


encode = msgspec.json.encode
decode_update = msgspec.json.Decoder(DeviceUpdateIn).decode
JSON_HEADERS = [(b"content-type", b"application/json")]
FORBIDDEN = b'{"errors":[{"code":"access_denied","message":"forbidden"}]}'
_state: dict[str, sqlite3.Connection] = {}


class Refused(Exception):
    def __init__(self, status: int, body: bytes = FORBIDDEN) -> None:
        self.status, self.body = status, body


def now_us() -> int:
    return time.time_ns() // 1000


def rfc3339(us: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(us // 1_000_000))


def one(statement: str, params: Sequence[Any]) -> Row | None:
    rows = _state["conn"].execute(statement, params).fetchall()
    return rows[0] if rows else None


def device_of_certificate(scope: Scope, path_id: bytes, flag: int) -> Row:
    """The device row, if the connection's certificate is registered to it, unrevoked and
    valid now, and the device is ACTIVE with the flag (column `flag`) set."""
    fingerprint = scope["extensions"]["tls"]["client_cert_sha256"]
    cert = one(q.SELECT_CERTIFICATE, (fingerprint,))
    now = now_us()
    if cert is None or cert[11] is not None or not cert[7] <= now < cert[8]:
        raise Refused(403)
    device = one(q.SELECT_DEVICE_BY_ID, (cert[2],))
    if device is None or device[0] != cert[2] or device[0] != path_id:
        raise Refused(403)
    if device[7] != "ACTIVE" or not device[flag]:
        raise Refused(403)
    return device


def profile_of(device: Row) -> tuple[Row, list[Row], Row]:
    """(profile, its fields, its division): devreg's ProfileService.profile."""
    profile = one(q.SELECT_PROFILE, (device[1], device[6]))
    assert profile is not None
    fields = _state["conn"].execute(q.SELECT_FIELDS_OF_ONE, (profile[0],)).fetchall()
    division = one(q.SELECT_DIVISION, (device[1], profile[2]))
    assert division is not None
    return profile, fields, division


def view(device: Row) -> bytes:
    """devreg's DeviceService.views (profile, fields, division, values), then the shape."""
    profile, fields, division = profile_of(device)
    rows = _state["conn"].execute(q.SELECT_VALUES_OF_ONE, (device[0],)).fetchall()
    return render(device, profile, fields, division, {row[1]: row[2] for row in rows})


def render(
    device: Row, profile: Row, fields: list[Row], division: Row, values: dict[bytes, str]
) -> bytes:
    return encode(
        DeviceOut(
            id=str(uuid.UUID(bytes=device[0])),
            account_id=str(uuid.UUID(bytes=device[1])),
            division=Named(str(uuid.UUID(bytes=division[0])), division[2]),
            device_identifier=device[4] or "",
            device_profile=Named(str(uuid.UUID(bytes=profile[0])), profile[3]),
            created=rfc3339(device[12]),
            updated=rfc3339(device[13]),
            status=device[7],
            fields=[
                FieldValueOut(str(uuid.UUID(bytes=f[0])), f[2], values[f[0]], bool(f[3]))
                for f in fields
                if f[0] in values
            ],
            device_api_allow_read=bool(device[8]),
            device_api_allow_write=bool(device[9]),
            device_api_allow_renew_certificate=bool(device[10]),
            last_seen=None if device[11] is None else rfc3339(device[11]),
        )
    )


def checked_values(fields: list[Row], body: DeviceUpdateIn) -> dict[bytes, str]:
    """devreg's check_field_values: known ids, once each, short enough, mandatory present."""
    known = {f[0]: f for f in fields}
    values: dict[bytes, str] = {}
    for given in body.fields:
        field_id = uuid.UUID(given.id).bytes
        if field_id not in known or field_id in values or len(given.value) > MAX_VALUE:
            raise Refused(400, b'{"errors":[{"code":"invalid_input","message":"fields"}]}')
        values[field_id] = given.value
    if any(f[3] and not values.get(f[0]) for f in fields):
        raise Refused(400, b'{"errors":[{"code":"invalid_input","message":"mandatory"}]}')
    return values


def put(scope: Scope, path_id: bytes, raw: bytes) -> bytes:
    device = device_of_certificate(scope, path_id, flag=9)  # allow_write
    body = decode_update(raw)
    profile, fields, division = profile_of(device)
    values = checked_values(fields, body)
    conn, now = _state["conn"], now_us()
    identifier = body.device_identifier or device[4]
    conn.execute("BEGIN IMMEDIATE")
    try:
        rows = conn.execute(
            q.UPDATE_BY_DEVICE, (identifier, now, now, path_id, device[1], device[2], True)
        ).fetchall()
        if not rows:
            raise Refused(403)
        conn.execute(q.DELETE_VALUES, (path_id,))
        for field_id, value in values.items():
            conn.execute(q.INSERT_VALUE, (path_id, field_id, value))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return render(rows[0], profile, fields, division, values)  # as written: no read-back


def get(scope: Scope, path_id: bytes) -> bytes:
    device = device_of_certificate(scope, path_id, flag=8)  # allow_read
    now = now_us()
    _state["conn"].execute(q.TOUCH_LAST_SEEN, (now, path_id))
    return view((*device[:11], now, *device[12:]))


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
            _state["conn"] = connect(os.environ["BASELINE_DB"])
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            _state["conn"].close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    path: str = scope["path"]
    try:
        path_id = uuid.UUID(path[len(BASE) :]).bytes if path.startswith(BASE) else None
    except ValueError:
        path_id = None
    if path_id is None:
        await respond(send, 404, b'{"errors":[{"code":"not_found","message":"no route"}]}')
        return
    try:
        if scope["method"] == "PUT":
            await respond(send, 201, put(scope, path_id, await read_body(receive)))
        elif scope["method"] == "GET":
            await respond(send, 200, get(scope, path_id))
        else:
            await respond(send, 405, b'{"errors":[{"code":"method_not_allowed","message":""}]}')
    except Refused as refused:
        await respond(send, refused.status, refused.body)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
        await respond(send, 400, b'{"errors":[{"code":"invalid_input","message":"body"}]}')
