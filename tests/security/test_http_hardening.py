"""HTTP-level hardening on a real server (issue 12, item 14 and the docs' assets of item 2):
HEAD served wherever GET is, security headers on the docs, no caching of answers that carry
a secret, a credential header given twice refused, and the static assets served from
memory with an ETag."""

from __future__ import annotations

import base64
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tests.dialect_d.helpers import Account, new_account
from tests.dialect_f.helpers import Tenant, new_tenant
from tests.support.server import RunningServer, start_server

D = "/iot/api/v2"
BUNDLE = "/docs/static/swagger-ui-bundle.js"


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("web") / "data", rate_limit=0, est=True)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def tenant(web_server: RunningServer) -> Iterator[Tenant]:
    made = new_tenant(web_server)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def d_account(web_server: RunningServer) -> Iterator[Account]:
    made = new_account(web_server)
    try:
        yield made
    finally:
        made.close()


def raw_exchange(server: RunningServer, *requests: bytes) -> bytes:
    """`requests` pipelined on one connection (the last one closes it); every byte back."""
    port = int(server.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"".join(requests))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def request(method: str, path: str, *headers: str, close: bool = False) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: localhost", *headers]
    if close:
        lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def split_head(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, everything after the head)."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, rest


# --- HEAD ---------------------------------------------------------------------------------


def head_then_get(server: RunningServer, path: str, *headers: str) -> None:
    """HEAD answers GET's status and headers with no body: the GET pipelined behind it on
    the same connection starts right after HEAD's head."""
    raw = raw_exchange(
        server, request("HEAD", path, *headers), request("GET", path, *headers, close=True)
    )
    head_status, head_headers, rest = split_head(raw)
    assert rest.startswith(b"HTTP/1.1 "), rest[:80]  # no body after HEAD's head
    get_status, get_headers, body = split_head(rest)
    assert head_status == get_status, (path, head_status, get_status)
    # the GET closed the connection; each request has an id of its own
    for varying in ("date", "connection", "x-request-id"):
        assert head_headers.pop(varying, None) or varying != "x-request-id", head_headers
        get_headers.pop(varying, None)
    assert head_headers == get_headers, (path, head_headers, get_headers)  # length too
    length = int(get_headers["content-length"])
    assert length == len(body) > 0


def test_head_is_served_wherever_get_is_in_both_dialects(
    tenant: Tenant, d_account: Account
) -> None:
    server = tenant.server
    made = tenant.live.post("/devices", json={"reference_id": "head"}).json()
    bearer = f"authorization: Bearer {tenant.live_token}"
    head_then_get(server, "/devices", bearer)
    head_then_get(server, f"/devices/{made['id']}", bearer)
    head_then_get(server, "/devices")  # 403 without a token: the refusal, without its body
    key = f"x-api-key: {d_account.live_key}"
    head_then_get(server, f"{D}/device", key)
    head_then_get(server, f"{D}/division", key)
    head_then_get(server, f"{D}/device")  # 401
    for public in ("/healthz", "/openapi.json", "/ca.pem", "/docs", BUNDLE):
        head_then_get(server, public)
    with httpx.Client(base_url=server.base_url) as client:
        answer = client.head("/devices", headers={"authorization": f"Bearer {tenant.live_token}"})
        assert answer.status_code == 200 and answer.content == b""


def test_methods_a_path_does_not_serve_are_still_405(tenant: Tenant, d_account: Account) -> None:
    with httpx.Client(base_url=tenant.server.base_url) as client:
        for method, path in (("DELETE", "/healthz"), ("PUT", "/login"), ("POST", "/docs")):
            answer = client.request(method, path)
            assert answer.status_code == 405, (method, path, answer.text)
            assert answer.json()["code"] == "method_not_allowed"
            assert answer.headers["allow"] == "GET, HEAD", answer.headers
        # A path without GET has no HEAD either (dialect D's envelope, no body).
        renew = client.head(f"{D}/device/00000000-0000-0000-0000-000000000000/renew")
        assert renew.status_code == 405 and renew.content == b""
        assert renew.headers["allow"] == "POST"
        listing = client.request("PATCH", "/devices")
        assert listing.status_code == 405 and listing.headers["allow"] == "GET, HEAD, POST"


# --- security headers, caching of secrets ---------------------------------------------------


def test_docs_and_their_assets_carry_security_headers(web_server: RunningServer) -> None:
    with httpx.Client(base_url=web_server.base_url) as client:
        for path in ("/docs", BUNDLE, "/docs/static/swagger-ui.css", "/docs/static/init.js"):
            answer = client.get(path)
            assert answer.status_code == 200, path
            policy = answer.headers["content-security-policy"]
            for directive in (
                "default-src 'none'",
                "script-src 'self'",
                "frame-ancestors 'none'",
                "base-uri 'none'",
            ):
                assert directive in policy, (path, policy)
            assert "unsafe-eval" not in policy and "script-src 'self';" in policy
            assert answer.headers["x-frame-options"] == "DENY"
            assert answer.headers["x-content-type-options"] == "nosniff"
        # nosniff goes on every answer, errors included
        for path in ("/healthz", "/devices", f"{D}/device", "/nowhere"):
            assert client.get(path).headers["x-content-type-options"] == "nosniff", path
    # ... and on the server layer's own refusals (here a head of over 100 headers: 431)
    many = [f"x-filler-{n}: {n}" for n in range(101)]
    status, headers, _ = split_head(raw_exchange(web_server, request("GET", "/healthz", *many)))
    assert status == 431 and headers["x-content-type-options"] == "nosniff", headers


def test_answers_carrying_a_secret_are_not_stored(tenant: Tenant, d_account: Account) -> None:
    login = tenant.anon.get("/login", auth=(tenant.account_id, tenant.live_key))
    assert login.status_code == 200 and "bearer_token" in login.json()
    assert login.headers["cache-control"] == "no-store"
    device = d_account.live.post("/device", json={"device_identifier": "secretive"}).json()
    issued = d_account.live.post(f"/device/{device['id']}/certificate", json={"generate_key": True})
    assert issued.status_code == 201 and "private_key" in issued.json(), issued.text
    assert issued.headers["cache-control"] == "no-store"
    secret = d_account.live.post(f"/device/{device['id']}/enrollment-secret")
    assert secret.status_code == 201 and "secret" in secret.json()
    assert secret.headers["cache-control"] == "no-store"
    # an answer without a secret is not marked
    listed = d_account.live.get(f"/device/{device['id']}/certificate")
    assert "private_key" not in listed.text and "cache-control" not in listed.headers


# --- a credential header given twice --------------------------------------------------------


def test_a_credential_header_given_twice_is_refused(tenant: Tenant, d_account: Account) -> None:
    server = tenant.server
    bearer = f"Bearer {tenant.live_token}"
    with httpx.Client(base_url=server.base_url) as client:
        for first, second in ((bearer, bearer), (bearer, "Bearer garbage"), ("Bearer x", bearer)):
            headers = [("authorization", first), ("authorization", second)]
            made = client.post("/devices", headers=headers, json={"reference_id": "twice"})
            assert made.status_code == 400, made.text
            body = made.json()
            assert body["object"] == "error" and body["code"] == "invalid_parameter", body
            assert "authorization" in body["message"] and "more than once" in body["message"]
        basic = (
            "Basic " + base64.b64encode(f"{tenant.account_id}:{tenant.live_key}".encode()).decode()
        )
        login = client.get("/login", headers=[("authorization", basic)] * 2)
        assert login.status_code == 400 and login.json()["code"] == "invalid_parameter"
        key = d_account.live_key
        for pair in ((key, key), (key, "sk_live_other"), ("sk_live_other", key)):
            headers = [("x-api-key", pair[0]), ("x-api-key", pair[1])]
            made = client.post(f"{D}/device", headers=headers, json={"device_identifier": "two"})
            assert made.status_code == 400, made.text
            (error,) = made.json()["errors"]
            assert error["code"] == "invalid_input" and "x-api-key" in error["message"], error
    assert tenant.live.get("/devices").json()["data"] == []  # nothing was made
    assert d_account.live.get("/device").json()["records"] == []


def a_csr() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "twice")])
    request = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, SHA256())
    return request.public_bytes(Encoding.DER)


def test_est_refuses_two_authorization_headers(web_server: RunningServer) -> None:
    context = ssl.create_default_context(cafile=str(web_server.data_dir / "ca.pem"))
    basic = "Basic " + base64.b64encode(b"00000000-0000-0000-0000-000000000000:x").decode()
    answer = httpx.post(
        f"https://localhost:{web_server.est_port}/.well-known/est/simpleenroll",
        headers=[("authorization", basic), ("authorization", basic),
                 ("content-type", "application/pkcs10")],
        content=base64.encodebytes(a_csr()),
        verify=context,
    )  # fmt: skip
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    assert "more than once" in answer.text


# --- the docs' static assets: from memory, with an ETag ---------------------------------------


def read_bytes(pid: int) -> int:
    """Bytes the process has read with read(2) and friends (files and sockets alike)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/<pid>/io")


def test_static_assets_are_served_from_memory_with_an_etag(web_server: RunningServer) -> None:
    with httpx.Client(base_url=web_server.base_url) as client:
        first = client.get(BUNDLE)
        assert first.status_code == 200 and len(first.content) > 1_000_000
        etag = first.headers["etag"]
        assert etag.startswith('"') and etag.endswith('"') and len(etag) > 10
        cache = first.headers["cache-control"]
        assert cache.startswith("public, max-age=") and int(cache.split("=")[1]) >= 3600
        # 20 more fetches read (from disk or anywhere) far less than one copy of the bundle
        before = read_bytes(web_server.process.pid)
        for _ in range(20):
            assert client.get(BUNDLE).content == first.content
        read = read_bytes(web_server.process.pid) - before
        assert read < len(first.content), read
        # conditional requests: a matching tag (strong, weak, in a list, *) is a 304
        for tag in (etag, "W/" + etag, f'"other", {etag}', "*"):
            again = client.get(BUNDLE, headers={"if-none-match": tag})
            assert again.status_code == 304, tag
            assert again.content == b"" and again.headers["etag"] == etag
            assert again.headers["cache-control"] == cache
            assert "content-length" not in again.headers
        changed = client.get(BUNDLE, headers={"if-none-match": '"something-else"'})
        assert changed.status_code == 200 and changed.content == first.content
        css = client.get("/docs/static/swagger-ui.css")
        assert css.headers["etag"] != etag
