"""The limited protocol in-process (a real uvicorn server in a thread, raw sockets): what
the end-to-end tests in tests/server/test_abuse_limits.py cannot easily arrange."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from devreg.server.listeners import UVICORN_SETTINGS, bind
from devreg.web.errors import HttpError
from devreg.web.protocol import MAX_PIPELINED, LimitedHttpToolsProtocol, Limits
from devreg.web.response import Response

HEAD_TIMEOUT = 0.5
SLOW = 1.2  # seconds GET /slow takes to answer


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(SLOW)
    body = scope["path"].encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class Recorded:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, str, int]] = []
        self.fail = fail

    def __call__(self, client: str, method: str, path: str, error: HttpError) -> Response:
        self.calls.append((method, path, error.status))
        if self.fail:
            raise RuntimeError("the renderer broke")
        return Response(error.status, b'{"refused": true}')


def serve(refusals: Recorded) -> Iterator[int]:
    for port, _ in serving(refusals, Limits(head_timeout=HEAD_TIMEOUT, body_timeout=HEAD_TIMEOUT)):
        yield port


def serving(refusals: Recorded, limits: Limits) -> Iterator[tuple[int, uvicorn.Server]]:
    """A real uvicorn server with the limited protocol in a thread: its port and itself."""
    protocol = LimitedHttpToolsProtocol.configure(limits, refusals)
    config = uvicorn.Config(app, http=protocol, **{**UVICORN_SETTINGS, "lifespan": "off"})
    server = uvicorn.Server(config)
    sock = bind("127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "did not start"
        time.sleep(0.01)
    try:
        yield int(sock.getsockname()[1]), server
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def refusals() -> Recorded:
    return Recorded()


@pytest.fixture
def port(refusals: Recorded) -> Iterator[int]:
    yield from serve(refusals)


def read_all(sock: socket.socket, seconds: float = 5) -> bytes:
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except OSError:
        pass
    return data


def test_a_pipelined_head_waits_for_the_answer_before_it(port: int) -> None:
    """The second request's head is incomplete while the first is still being answered:
    its clock starts again, so the first answer goes out whole, and only then the 408."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost:")
        data = read_all(sock)
    first, _, rest = data.partition(b"/slow")
    assert first.startswith(b"HTTP/1.1 200 "), data
    assert rest.startswith(b"HTTP/1.1 408 "), data


def test_the_refusal_names_the_request_as_far_as_it_came(port: int, refusals: Recorded) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /a%20b?secret=1 HTTP/1.1\r\nX-Big: " + b"x" * 40_000 + b"\r\n\r\n")
        data = read_all(sock)
    assert data.startswith(b"HTTP/1.1 431 "), data
    assert data.endswith(b'{"refused": true}') and b"connection: close" in data
    assert refusals.calls == [("POST", "/a b", 431)]  # the path, never the query


def test_a_broken_renderer_still_refuses() -> None:
    broken = Recorded(fail=True)
    for port in serve(broken):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\n" + b"X-H: 1\r\n" * 200 + b"\r\n")
            data = read_all(sock)
        assert data.startswith(b"HTTP/1.1 431 ") and b"more than 100 headers" in data, data
    assert broken.calls == [("GET", "/", 431)]


def test_blank_lines_do_not_stop_every_clock(port: int) -> None:
    """The parser skips blank lines between requests, and uvicorn stops its keep-alive
    clock on any byte: without the head's clock, "\\r\\n" would hold a connection forever."""
    for first in (b"", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            if first:
                sock.sendall(first)
                sock.settimeout(5)
                assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
            started = time.monotonic()
            sock.sendall(b"\r\n")
            time.sleep(HEAD_TIMEOUT / 2)
            sock.sendall(b"\r\n")
            assert read_all(sock) == b""  # closed, nothing said
            assert time.monotonic() - started < HEAD_TIMEOUT + 1


def test_a_flood_of_pipelined_requests_ends_the_connection() -> None:
    """Found by review: every pipelined request of a read was queued (16 MB of small
    requests held ~1 GB); past MAX_PIPELINED queued the connection is dropped."""
    for port, server in serving(Recorded(), Limits(head_timeout=30, body_timeout=30)):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            with contextlib.suppress(OSError):  # the server may reset us mid-send
                sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" * (MAX_PIPELINED + 50))
            data = read_all(sock, SLOW + 5)
        assert data.count(b"HTTP/1.1 200 ") <= 1  # not 66 answers: dropped
        assert not server.server_state.tasks or len(server.server_state.tasks) <= 1
