"""Abuse limits on every listener of a real `devreg serve` (plain HTTP, the client-auth
mTLS listener, the EST listener): bodies over the limit, huge heads, thousands of query
parameters, deeply nested JSON, clients that never finish their head or body or their TLS
handshake, more connections than allowed, and a slowloris while everyone else is served.

Time is scaled down: the server runs with 2-second head, body and handshake timeouts
(10, 30 and 10 s by default), so what would take minutes takes seconds.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import multiprocessing
import socket
import ssl
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import RunningServer, create_account, login, start_server
from tests.tls.helpers import client_context

TIMEOUT = 2.0  # head, body and TLS handshake timeouts of the server under test
SLACK = 1.5  # how much later than its timeout a connection may be closed
API = "/iot/api/v2"
EST_CACERTS = "/.well-known/est/cacerts"
MAX_BODY = 1024 * 1024
MAX_HEAD = 32 * 1024
# A path of each listener's (the device's own on the client-auth one).
PATHS = {"plain": "/devices", "mtls": f"{API}/device/{{id}}", "est": EST_CACERTS}


# --- the server and its listeners ----------------------------------------------------------


@dataclass
class Listener:
    name: str  # plain, mtls or est
    port: int
    context: ssl.SSLContext | None  # None: plain TCP
    probe: bytes  # a normal request, answered 200
    dialect: str  # F, D or EST: the error envelope of its paths

    def connect(self, timeout: float = 10) -> socket.socket:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        if self.context is None:
            return raw
        return self.context.wrap_socket(raw, server_hostname="localhost")


@dataclass
class World:
    server: RunningServer
    token: str
    api_key: str
    device_id: str
    listeners: dict[str, Listener] = field(default_factory=dict)
    est_basic: str = ""  # an Authorization header with the device's enrollment secret


def request(method: str, path: str, *headers: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("abuse")
    server = start_server(
        base / "data",
        mtls=True,
        est=True,
        rate_limit=0,
        head_timeout=TIMEOUT,
        body_timeout=TIMEOUT,
        tls_handshake_timeout=TIMEOUT,
        # every attacker here is 127.0.0.1: the per-address limit would cut the slowloris
        # short (tests/security/test_connection_floods.py tests that limit)
        max_connections_per_address=0,
    )
    try:
        account = create_account(server, "Abuse")
        token = login(server, account["account_id"], account["live_key"])
        api = httpx.Client(
            base_url=server.base_url + API, headers={"x-api-key": account["live_key"]}
        )
        made = api.post("/device", json={"device_identifier": "probe", "fields": []})
        assert made.status_code == 201, made.text
        device_id = made.json()["id"]
        issued = api.post(f"/device/{device_id}/certificate", json={"generate_key": True})
        assert issued.status_code == 201, issued.text
        # EST authenticates before it reads a body: its body limits need a credential (a
        # secret is spent only by a request that is issued, never by a refused one).
        secret = api.post(f"/device/{device_id}/enrollment-secret")
        assert secret.status_code == 201, secret.text
        basic = base64.b64encode(f"{device_id}:{secret.json()['secret']}".encode()).decode()
        api.close()
        cert, key = base / "device.pem", base / "device.key"
        cert.write_text(issued.json()["pem"])
        key.write_text(issued.json()["private_key"])
        key.chmod(0o600)
        ca = server.data_dir / "ca.pem"
        mtls = ssl.create_default_context(cafile=str(ca))
        mtls.load_cert_chain(cert, key)
        world = World(server, token, account["live_key"], device_id)
        world.est_basic = f"Authorization: Basic {basic}"
        world.listeners = {
            "plain": Listener(
                "plain",
                int(server.base_url.rsplit(":", 1)[1]),
                None,
                request("GET", "/devices?limit=1", f"Authorization: Bearer {token}"),
                "F",
            ),
            "mtls": Listener(
                "mtls",
                server.mtls_port or 0,
                mtls,
                request("GET", f"{API}/device/{device_id}"),
                "D",
            ),
            "est": Listener(
                "est", server.est_port or 0, client_context(ca), request("GET", EST_CACERTS), "EST"
            ),
        }
        yield world
    finally:
        server.stop()


LISTENERS = ["plain", "mtls", "est"]


# --- a minimal HTTP/1.1 client over raw (TLS) sockets -------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def error_code(self, dialect: str) -> str:
        """The error code in the dialect's envelope (EST answers plain text)."""
        if dialect == "EST":
            assert self.headers["content-type"].startswith("text/plain"), self.headers
            return ""
        document: Any = json.loads(self.body)
        if dialect == "F":
            assert document["object"] == "error", document
            assert set(document) == {
                "object",
                "live_mode",
                "context",
                "type",
                "code",
                "message",
                "time_created",
            }
            code: str = document["code"]
            return code
        assert set(document) == {"errors"} and len(document["errors"]) == 1, document
        code = document["errors"][0]["code"]
        return code


def read_reply(sock: socket.socket, timeout: float = 10) -> Reply:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed without an answer after {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Reply(int(lines[0].split(" ")[1]), headers, body[:length])


def send_all(sock: socket.socket, data: bytes) -> None:
    """Send what the server still takes: it may answer and close before the end."""
    with contextlib.suppress(OSError):
        sock.sendall(data)


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:  # reset, or a TLS alert: closed all the same
        return True
    return True


def abusive(listener: Listener, data: bytes, *, trickle: bytes = b"") -> tuple[Reply, bool]:
    """Send `data`, read the answer; True when the server closed the connection after it."""
    with listener.connect() as sock:
        send_all(sock, data)
        if trickle:
            send_all(sock, trickle)
        reply = read_reply(sock)
        return reply, closed_by_server(sock, 5)


def assert_refused(
    listener: Listener, reply: Reply, closed: bool, status: int, code: str | None
) -> None:
    assert reply.status == status, (reply.status, reply.body[:300])
    found = reply.error_code(listener.dialect)
    if code is not None and listener.dialect != "EST":
        assert found == code, reply.body
    assert closed, "the connection should end with the refusal"


# --- what each abusive request gets --------------------------------------------------------


def abusive_body_request(world: World, listener: Listener, body: bytes, **kw: str) -> bytes:
    """A request that reads a body, on this listener, with `body` (or only headers)."""
    extra = [f"{k.replace('_', '-')}: {v}" for k, v in kw.items()]
    if listener.name == "plain":
        auth = f"Authorization: Bearer {world.token}"
        return request(
            "POST", "/devices", auth, "Content-Type: application/json", *extra, body=body
        )
    if listener.name == "mtls":
        return request(
            "PUT", f"{API}/device/{world.device_id}", "Content-Type: application/json", *extra,
            body=body,
        )  # fmt: skip
    return request(
        "POST",
        "/.well-known/est/simpleenroll",
        "Content-Type: application/pkcs10",
        world.est_basic,
        *extra,
        body=body,
    )


@pytest.mark.parametrize("name", LISTENERS)
def test_a_body_over_the_limit_is_413_and_the_connection_ends(world: World, name: str) -> None:
    listener = world.listeners[name]
    limit = 64 * 1024 if name == "est" else MAX_BODY  # EST requests are CSRs
    # Declared too large: refused before a byte of it is read.
    head = abusive_body_request(world, listener, b"", Content_Length=str(limit + 1))
    reply, closed = abusive(listener, head, trickle=b"x" * 1000)
    assert_refused(listener, reply, closed, 413, "payload_too_large")
    # Chunked, without a length: refused once the limit is passed.
    head = abusive_body_request(world, listener, b"", Transfer_Encoding="chunked")
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"[" * 64 * 1024)
    reply, closed = abusive(listener, head + chunk * (limit // len(chunk) + 2))
    assert_refused(listener, reply, closed, 413, "payload_too_large")


@pytest.mark.parametrize("name", LISTENERS)
def test_a_huge_head_is_431(world: World, name: str) -> None:
    listener = world.listeners[name]
    path = PATHS[name].format(id=world.device_id)
    # One huge header, complete.
    big = request("GET", path, "X-Big: " + "a" * (MAX_HEAD + 1024))
    reply, closed = abusive(listener, big)
    assert_refused(listener, reply, closed, 431, "request_header_fields_too_large")
    # One endless header: the answer comes before it ends.
    with listener.connect() as sock:
        send_all(sock, request("GET", path)[:-2] + b"X-Endless: ")
        for _ in range(8):
            send_all(sock, b"b" * 8192)
        reply = read_reply(sock)
        assert_refused(listener, reply, closed_by_server(sock, 5), 431, None)
    # Many small headers.
    many = request("GET", path, *(f"X-H{i}: {i}" for i in range(500)))
    reply, closed = abusive(listener, many)
    assert_refused(listener, reply, closed, 431, "request_header_fields_too_large")
    # A path that is too long (on the EST port, outside EST's routes: no EST envelope).
    reply, closed = abusive(listener, request("GET", path + "/" + "p" * MAX_HEAD))
    assert reply.status == 431 and closed, reply.body[:300]


@pytest.mark.parametrize("name", LISTENERS)
def test_thousands_of_query_parameters_are_400(world: World, name: str) -> None:
    listener = world.listeners[name]
    query = "&".join(f"p{i}=1" for i in range(3000))
    path = PATHS[name].format(id=world.device_id)
    auth = [f"Authorization: Bearer {world.token}"] if name == "plain" else []
    with listener.connect() as sock:
        sock.sendall(request("GET", f"{path}?{query}", *auth))
        reply = read_reply(sock)
        assert reply.status == 400, reply.body
        if listener.dialect != "EST":
            assert reply.error_code(listener.dialect) in ("invalid_parameter", "invalid_input")
        assert b"more than 32 parameters" in reply.body
        # a plain mistake: the connection stays usable
        sock.sendall(listener.probe)
        assert read_reply(sock).status == 200


@pytest.mark.parametrize("name", LISTENERS)
def test_a_request_that_cannot_be_parsed_is_400(world: World, name: str) -> None:
    listener = world.listeners[name]
    path = PATHS[name].format(id=world.device_id)
    for broken in (
        f"GET {path} HTTP/1.1\r\nHost: localhost\r\nNo colon here\r\n\r\n".encode(),
        f"GET {path} HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".encode(),
        b"\x16\x03\x01\x02\x00 not HTTP at all\r\n\r\n",
    ):
        reply, closed = abusive(listener, broken)
        assert reply.status == 400 and closed, reply.body
        if broken.startswith(b"GET"):
            assert_refused(listener, reply, closed, 400, "malformed_request")


@pytest.mark.parametrize("name", ["plain", "mtls"])
def test_deeply_nested_json_is_400(world: World, name: str) -> None:
    listener = world.listeners[name]
    depth = 200_000
    field_name = "reference_id" if name == "plain" else "device_identifier"
    for body in (
        b'{"%s": ' % field_name.encode() + b"[" * depth + b"]" * depth + b"}",
        b"[" * depth + b"]" * depth,
        b'{"unknown": ' + b'{"a": ' * (depth // 8) + b"1" + b"}" * (depth // 8) + b"}",
        b"[" * depth,  # never closed
    ):
        with listener.connect() as sock:
            sock.sendall(abusive_body_request(world, listener, body))
            reply = read_reply(sock)
            assert reply.status == 400, reply.body[:300]
            code = reply.error_code(listener.dialect)
            assert code in ("invalid_json", "invalid_parameter", "invalid_input"), code
            sock.sendall(listener.probe)
            assert read_reply(sock).status == 200


# --- slow clients ---------------------------------------------------------------------------
# Each case runs on the three listeners at once: the waits overlap.


def on_every_listener(world: World, case: Callable[[World, Listener], None]) -> None:
    with ThreadPoolExecutor(len(LISTENERS)) as pool:
        for future in [pool.submit(case, world, world.listeners[name]) for name in LISTENERS]:
            future.result()


def sends_nothing(world: World, listener: Listener) -> None:
    """Plain: no request head within the timeout; TLS: no handshake within it."""
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        started = time.monotonic()
        assert closed_by_server(sock, TIMEOUT + SLACK), listener.name
        assert TIMEOUT - 0.2 <= time.monotonic() - started <= TIMEOUT + SLACK, listener.name


def test_a_connection_that_sends_nothing_is_closed(world: World) -> None:
    on_every_listener(world, sends_nothing)


def trickles_its_head(world: World, listener: Listener) -> None:
    path = PATHS[listener.name].format(id=world.device_id)
    with listener.connect() as sock:
        started = time.monotonic()
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n".encode())
        sock.settimeout(0.25)
        answer = b""
        while time.monotonic() - started < TIMEOUT + SLACK:
            send_all(sock, b"X")  # a byte of a header that never ends
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            break
        elapsed = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408 "), (listener.name, answer)
        assert TIMEOUT - 0.2 <= elapsed <= TIMEOUT + SLACK, (listener.name, elapsed)
    if listener.dialect != "EST":
        assert b"request_timeout" in answer, answer


def test_a_head_trickled_a_byte_at_a_time_is_408(world: World) -> None:
    on_every_listener(world, trickles_its_head)


def never_sends_its_body(world: World, listener: Listener) -> None:
    head = abusive_body_request(world, listener, b"", Content_Length="100")
    with listener.connect() as sock:
        started = time.monotonic()
        sock.sendall(head + b"{")
        reply = read_reply(sock, TIMEOUT + SLACK + 1)
        elapsed = time.monotonic() - started
        assert TIMEOUT - 0.2 <= elapsed <= TIMEOUT + SLACK, (listener.name, elapsed)
        assert_refused(listener, reply, closed_by_server(sock, 5), 408, "request_timeout")


def test_a_body_that_never_arrives_is_408(world: World) -> None:
    on_every_listener(world, never_sends_its_body)


def idles_between_requests(world: World, listener: Listener) -> None:
    with listener.connect() as sock:
        sock.sendall(listener.probe)
        assert read_reply(sock).status == 200
        time.sleep(TIMEOUT + 0.5)
        sock.sendall(listener.probe)
        assert read_reply(sock).status == 200, listener.name


def test_an_idle_kept_alive_connection_outlives_the_head_timeout(world: World) -> None:
    """Between requests the keep-alive timeout (30 s) rules, not the head timeout."""
    on_every_listener(world, idles_between_requests)


def test_over_the_connection_limit_the_longest_idle_connections_go(tmp_path: Path) -> None:
    limit = 40
    server = start_server(tmp_path / "data", rate_limit=0, max_connections=limit)
    port = int(server.base_url.rsplit(":", 1)[1])
    idle: list[socket.socket] = []
    try:
        for _ in range(3 * limit):  # each new one pushes out the oldest idle one
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        for _ in range(20):  # and a client with a request is served every time
            with httpx.Client(base_url=server.base_url) as client:
                assert client.get("/healthz").status_code == 200
        closed = sum(closed_by_server(sock, 0.5) for sock in idle[: 2 * limit])
        assert closed == 2 * limit
        assert "connections open (the limit)" in server.log()
    finally:
        for sock in idle:
            sock.close()
        server.stop()


# --- everyone else during a slowloris ----------------------------------------------------

# Attackers run in a process of their own, so that their work does not slow the probes'
# side of the measurement (one interpreter, one GIL).


@dataclass(frozen=True)
class Target:
    port: int
    mode: str  # "tcp": plain HTTP; "tls": handshake, no certificate; "cert": handshake with
    # the device's certificate; "silent": TCP only, never a byte (a stalled TLS handshake)
    count: int


async def _attacker(
    target: Target, context: ssl.SSLContext | None, stop: Any, stats: dict[str, Any]
) -> None:
    """Connect, then send a header byte every half second until the server cuts us, and
    again; `held` records how long the server let each connection live."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1",
                target.port,
                ssl=context,
                server_hostname="localhost" if context else None,
            )
        except (TimeoutError, OSError):
            await asyncio.sleep(0.1)
            continue
        stats["opened"] += 1
        try:
            if target.mode != "silent":
                writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(reader.read(4096), 0.5)
                except TimeoutError:
                    if target.mode != "silent":
                        writer.write(b"s")
                    continue
                if data.startswith(b"HTTP/1.1 "):
                    status = data.split(b" ", 2)[1].decode()
                    stats["answers"][status] = stats["answers"].get(status, 0) + 1
                break  # answered and closed, or just closed
            else:
                return  # still open when the attack ends: not counted
            stats["held"].append(time.monotonic() - started)
        except OSError:  # ssl.SSLError too
            stats["held"].append(time.monotonic() - started)
        finally:
            writer.close()


def run_attack(targets: list[Target], ca: str, cert: str, key: str, ready: Any, stop: Any,
               results: Any) -> None:  # fmt: skip
    """The attacking process: every target's sockets, until `stop`; stats into `results`."""
    plain_tls = ssl.create_default_context(cafile=ca)
    with_cert = ssl.create_default_context(cafile=ca)
    with_cert.load_cert_chain(cert, key)
    contexts = {"tcp": None, "silent": None, "tls": plain_tls, "cert": with_cert}
    stats: dict[str, Any] = {"opened": 0, "held": [], "answers": {}}

    async def attack() -> None:
        tasks = []
        for target in targets:
            for _ in range(target.count):
                tasks.append(
                    asyncio.ensure_future(_attacker(target, contexts[target.mode], stop, stats))
                )
                await asyncio.sleep(0.002)
        await asyncio.sleep(0.5)
        ready.set()
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(attack())
    results.put(stats)


def latencies(world: World, seconds: float) -> dict[str, list[float]]:
    """Normal requests, one listener after the other, each on its kept-alive connection."""
    sockets = {name: listener.connect() for name, listener in world.listeners.items()}
    found: dict[str, list[float]] = {name: [] for name in sockets}
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name, sock in sockets.items():
                started = time.perf_counter()
                sock.sendall(world.listeners[name].probe)
                reply = read_reply(sock)
                found[name].append(time.perf_counter() - started)
                assert reply.status == 200, (name, reply.body[:300])
    finally:
        for sock in sockets.values():
            sock.close()
    return found


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def test_everyone_else_is_served_as_usual_during_a_slowloris(world: World) -> None:
    per_listener = 100
    plain, mtls, est = (world.listeners[name].port for name in LISTENERS)
    targets = [
        Target(plain, "tcp", per_listener),
        Target(mtls, "cert", per_listener // 2),  # a device trickling its head
        Target(mtls, "silent", per_listener // 2),  # no certificate: stalls the handshake
        Target(est, "tls", per_listener),
    ]
    files = world.server.data_dir.parent
    context = multiprocessing.get_context("spawn")
    ready, stop, results = context.Event(), context.Event(), context.Queue()
    attacker = context.Process(
        target=run_attack,
        args=(targets, str(world.server.data_dir / "ca.pem"), str(files / "device.pem"),
              str(files / "device.key"), ready, stop, results),
    )  # fmt: skip

    latencies(world, 0.5)  # warm up
    before = latencies(world, 1.5)
    attacker.start()
    try:
        assert ready.wait(30), "the attack did not start"
        time.sleep(0.5)
        during = latencies(world, 4.0)
    finally:
        stop.set()
        stats = results.get(timeout=30)
        attacker.join(30)
    report = {
        name: {
            "p95_before_ms": round(p95(before[name]) * 1000, 2),
            "p95_during_ms": round(p95(during[name]) * 1000, 2),
            "ratio": round(p95(during[name]) / p95(before[name]), 2),
            "requests_before": len(before[name]),
            "requests_during": len(during[name]),
        }
        for name in before
    }
    held = sorted(stats["held"])
    print(f"\nslowloris: {stats['opened']} connections opened, answers {stats['answers']},"
          f" longest held {held[-1]:.2f} s; {json.dumps(report)}")  # fmt: skip
    for name in before:
        assert p95(during[name]) < 5 * p95(before[name]) + 0.02, report
    # The server cut every attacker within its timeouts, and answered the heads 408.
    assert stats["opened"] >= 2 * 3 * per_listener, stats["opened"]  # all of them, again
    assert held[-1] <= TIMEOUT + SLACK, held[-20:]
    assert stats["answers"].get("408", 0) > per_listener, stats["answers"]


# --- the open-files limit ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("soft", "hard", "wanted", "warned"),
    [
        (1024, 4096, 2048 + 256, False),  # raised to what the connections need
        (1024, 1500, 1500, True),  # as far as the hard limit allows, and said so
        (65536, 65536, None, False),  # enough already: left alone
    ],
)
def test_the_open_files_limit_is_raised_for_the_connections(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    soft: int,
    hard: int,
    wanted: int | None,
    warned: bool,
) -> None:
    from devreg.server import listeners

    set_to: list[tuple[int, int]] = []
    monkeypatch.setattr(listeners.resource, "getrlimit", lambda _: (soft, hard))
    monkeypatch.setattr(listeners.resource, "setrlimit", lambda _, value: set_to.append(value))
    listeners.raise_file_limit(2048)
    assert set_to == ([] if wanted is None else [(wanted, hard)])
    assert ("open files are limited" in caplog.text) is warned
