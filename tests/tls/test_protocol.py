"""The protocol subclass and the two-listener server in-process: a real uvicorn server in a
thread, real TLS sockets, and a minimal ASGI app that echoes the scope's TLS extension."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from devreg.server.listeners import UVICORN_SETTINGS, DevregServer, bind
from devreg.tls.client_cert import peer_certificate
from devreg.tls.context import client_ca_paths, mtls_context
from devreg.tls.protocol import MtlsHttpToolsProtocol
from devreg.tls.server_cert import ensure_server_certificate
from tests.tls.helpers import Credential, client_context, devreg_ca, issue

CA_FILE = "ca.pem"


class EchoApp:
    """Answers each request with its TLS extension; counts lifespan events."""

    def __init__(self) -> None:
        self.startups = 0
        self.shutdowns = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.startups += 1
                    await send({"type": "lifespan.startup.complete"})
                else:
                    self.shutdowns += 1
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        tls = (scope.get("extensions") or {}).get("tls")
        cert = peer_certificate(scope)
        body = json.dumps(
            {"tls": tls, "serial": format(cert.serial_number, "x") if cert else None}
        ).encode()
        if tls is not None:
            tls["client_cert_error"] = "changed by a handler"  # must not leak to the next
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


class Running:
    def __init__(self, server: uvicorn.Server, sockets: list[socket.socket]) -> None:
        self.server = server
        self.thread = threading.Thread(target=server.run, kwargs={"sockets": sockets})
        self.thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    ensure_server_certificate(data)
    return data


@pytest.fixture
def device(data_dir: Path, tmp_path: Path) -> Credential:
    return issue(devreg_ca(data_dir), tmp_path / "certs", "device-1")


def mtls_config(app: Any, data_dir: Path, loop: str = "uvloop", **settings: Any) -> uvicorn.Config:
    context = mtls_context(
        data_dir / "server.pem", data_dir / "server.key", client_ca_paths(data_dir)
    )
    options = {**UVICORN_SETTINGS, "loop": loop, **settings}
    return uvicorn.Config(
        app, http=MtlsHttpToolsProtocol, ssl_context_factory=lambda _c, _d: context, **options
    )


def get_twice(port: int, context: ssl.SSLContext) -> list[dict[str, Any]]:
    """Two requests on one keep-alive connection."""
    connection = http.client.HTTPSConnection("localhost", port, context=context, timeout=10)
    answers = []
    try:
        for _ in range(2):
            connection.request("GET", "/")
            response = connection.getresponse()
            assert response.status == 200
            answers.append(json.loads(response.read()))
    finally:
        connection.close()
    return answers


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize(
    ("version", "number"), [(ssl.TLSVersion.TLSv1_3, 0x0304), (ssl.TLSVersion.TLSv1_2, 0x0303)]
)
def test_every_request_on_the_connection_gets_the_tls_extension(
    data_dir: Path, device: Credential, loop: str, version: ssl.TLSVersion, number: int
) -> None:
    sock = bind("127.0.0.1", 0)
    running = Running(
        uvicorn.Server(mtls_config(EchoApp(), data_dir, loop, lifespan="off")), [sock]
    )
    try:
        port = sock.getsockname()[1]
        context = client_context(data_dir / CA_FILE, device, version=version)
        answers = get_twice(port, context)
    finally:
        running.stop()
    expected = {
        "server_cert": None,
        "client_cert_chain": [device.pem],
        "client_cert_name": device.subject,
        "client_cert_error": None,
        "tls_version": number,
        "cipher_suite": None,
    }
    assert [answer["tls"] for answer in answers] == [expected, expected]
    assert answers[0]["serial"] == format(device.certificate.serial_number, "x")


def test_no_extension_without_a_client_certificate(data_dir: Path) -> None:
    """Only a verified client certificate makes an extension: not a plain connection, nor
    a TLS one without a certificate (which the mTLS context never lets through)."""
    tls_sock, plain_sock = bind("127.0.0.1", 0), bind("127.0.0.1", 0)
    context = mtls_context(
        data_dir / "server.pem", data_dir / "server.key", client_ca_paths(data_dir)
    )
    context.verify_mode = ssl.CERT_OPTIONAL
    optional = uvicorn.Config(
        EchoApp(),
        http=MtlsHttpToolsProtocol,
        ssl_context_factory=lambda _c, _d: context,
        **{**UVICORN_SETTINGS, "lifespan": "off"},
    )
    plain = uvicorn.Config(
        EchoApp(), http=MtlsHttpToolsProtocol, **{**UVICORN_SETTINGS, "lifespan": "off"}
    )
    running = [
        Running(uvicorn.Server(optional), [tls_sock]),
        Running(uvicorn.Server(plain), [plain_sock]),
    ]
    try:
        answers = get_twice(tls_sock.getsockname()[1], client_context(data_dir / CA_FILE))
        assert [answer["tls"] for answer in answers] == [None, None]
        connection = http.client.HTTPConnection("127.0.0.1", plain_sock.getsockname()[1])
        connection.request("GET", "/")
        assert json.loads(connection.getresponse().read())["tls"] is None
        connection.close()
    finally:
        for server in running:
            server.stop()


def test_both_listeners_on_one_app_with_one_lifespan(data_dir: Path, device: Credential) -> None:
    app = EchoApp()
    plain_sock, mtls_sock = bind("127.0.0.1", 0), bind("127.0.0.1", 0)
    plain = uvicorn.Config(app, http="httptools", lifespan="on", **UVICORN_SETTINGS)
    server = DevregServer(plain, [(mtls_config(app, data_dir, lifespan="off"), mtls_sock)])
    running = Running(server, [plain_sock])
    try:
        plain_port, mtls_port = plain_sock.getsockname()[1], mtls_sock.getsockname()[1]
        connection = http.client.HTTPConnection("127.0.0.1", plain_port, timeout=10)
        connection.request("GET", "/")
        assert json.loads(connection.getresponse().read()) == {"tls": None, "serial": None}
        connection.close()
        context = client_context(data_dir / CA_FILE, device)
        answers = get_twice(mtls_port, context)
        assert all(answer["tls"]["client_cert_name"] == device.subject for answer in answers)
        assert app.startups == 1
    finally:
        running.stop()
    assert (app.startups, app.shutdowns) == (1, 1)
    for port in (plain_port, mtls_port):  # both listeners are closed
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)


def test_a_worker_stops_when_its_parent_is_gone(data_dir: Path) -> None:
    plain_sock = bind("127.0.0.1", 0)
    plain = uvicorn.Config(EchoApp(), http="httptools", lifespan="off", **UVICORN_SETTINGS)
    server = DevregServer(plain, parent_pid=-1)  # never anyone's parent
    running = Running(server, [plain_sock])
    running.thread.join(5)
    assert not running.thread.is_alive()
    assert server.should_exit
