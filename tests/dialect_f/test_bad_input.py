"""Every bad request gets seed 000's error object, a 4xx whose message names the problem,
and writes nothing: each test checks the account's devices before and after."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.dialect_f.helpers import (
    assert_error,
    bearer_client,
    list_all,
    new_tenant,
)
from tests.support.server import RunningServer

MIB = 1024 * 1024
SEED_STYLE_ID = "dev_6563a6757360a6d6a628e839"  # the seed's example: 24 hex digits


class World:
    """One account per module and store, with a device in each mode that must never change."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.tenant = new_tenant(server, "Acme")
        self.other = new_tenant(server, "Globex")
        live = self.tenant.live.post("/devices", json={"reference_id": "keep-live"})
        test = self.tenant.test.post("/devices", json={"reference_id": "keep-test"})
        assert live.status_code == test.status_code == 201
        self.device: dict[str, Any] = live.json()
        self.test_device: dict[str, Any] = test.json()

    def snapshot(self) -> tuple[list[dict[str, Any]], ...]:
        return (
            list_all(self.tenant.live),
            list_all(self.tenant.test),
            list_all(self.other.live),
            list_all(self.other.test),
        )

    @contextmanager
    def unchanged(self) -> Iterator[None]:
        before = self.snapshot()
        yield
        assert self.snapshot() == before, "a refused request wrote something"
        assert before[0] == [self.device] and before[1] == [self.test_device]

    def close(self) -> None:
        self.tenant.close()
        self.other.close()


@pytest.fixture(scope="module")
def world(f_server: RunningServer) -> Iterator[World]:
    made = World(f_server)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def live(world: World) -> httpx.Client:
    return world.tenant.live


def device_path(world: World) -> str:
    return f"/devices/{world.device['id']}"


def write_targets(world: World) -> list[tuple[str, str]]:
    return [("POST", "/devices"), ("PATCH", device_path(world))]


# --- bodies -----------------------------------------------------------------------------

JSON = "application/json"
BAD_BODIES = [
    # (id, body, code, words the message must contain)
    ("truncated", b'{"reference_id": ', "invalid_json", ["json"]),
    ("trailing comma", b'{"reference_id": "x",}', "invalid_json", ["json"]),
    ("single quotes", b"{'reference_id': 'x'}", "invalid_json", ["json"]),
    ("two objects", b'{"reference_id": "a"}{"reference_id": "b"}', "invalid_json", ["json"]),
    ("not utf-8", b'{"reference_id": "\xff\xfe"}', "invalid_json", ["json"]),
    ("lone surrogate", b'{"reference_id": "\\udc00"}', "invalid_json", ["json"]),
    ("array", b"[]", "invalid_parameter", ["object", "array"]),
    ("array of object", b'[{"reference_id": "x"}]', "invalid_parameter", ["object", "array"]),
    ("string", b'"DEV1234567890"', "invalid_parameter", ["object", "str"]),
    ("number", b"42", "invalid_parameter", ["object"]),
    ("null", b"null", "invalid_parameter", ["object", "null"]),
    ("reference int", b'{"reference_id": 123}', "invalid_parameter", ["reference_id", "int"]),
    ("reference null", b'{"reference_id": null}', "invalid_parameter", ["reference_id", "null"]),
    ("reference true", b'{"reference_id": true}', "invalid_parameter", ["reference_id", "bool"]),
    ("reference list", b'{"reference_id": ["x"]}', "invalid_parameter", ["reference_id"]),
    ("reference object", b'{"reference_id": {"a": 1}}', "invalid_parameter", ["reference_id"]),
    ("reference huge", b'{"reference_id": 1e999999}', "invalid_parameter", ["reference_id"]),
    ("unknown field", b'{"foo": 1}', "invalid_parameter", ["foo"]),
    ("unknown + known", b'{"reference_id": "x", "colour": "red"}', "invalid_parameter", ["colour"]),
    ("set id", b'{"id": "dev_00000000000000000000000000000000"}', "invalid_parameter", ["`id`"]),
    ("set live_mode", b'{"live_mode": false}', "invalid_parameter", ["live_mode"]),
    ("set account", b'{"account_id": "acc_0"}', "invalid_parameter", ["account_id"]),
    ("set last_seen", b'{"last_seen": "2022-03-22T11:12:21Z"}', "invalid_parameter", ["last_seen"]),
    ("wrong case", b'{"Reference_ID": "x"}', "invalid_parameter", ["Reference_ID"]),
    (
        "256 chars",
        b'{"reference_id": "' + b"a" * 256 + b'"}',
        "invalid_parameter",
        ["reference_id", "255"],
    ),
    (
        "256 emoji",
        ('{"reference_id": "' + "☃" * 256 + '"}').encode(),
        "invalid_parameter",
        ["reference_id", "255"],
    ),
    ("newline", b'{"reference_id": "a\\nb"}', "invalid_parameter", ["reference_id", "control"]),
    ("nul", b'{"reference_id": "a\\u0000b"}', "invalid_parameter", ["reference_id", "control"]),
    (
        "delete char",
        b'{"reference_id": "a\\u007fb"}',
        "invalid_parameter",
        ["reference_id", "control"],
    ),
]


@pytest.mark.parametrize(
    ("body", "code", "mentions"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_bad_body_is_400_and_writes_nothing(
    world: World, live: httpx.Client, method: str, body: bytes, code: str, mentions: list[str]
) -> None:
    path = "/devices" if method == "POST" else device_path(world)
    with world.unchanged():
        response = live.request(method, path, content=body, headers={"content-type": JSON})
        assert_error(response, 400, "invalid_request", code, mentions=mentions)


def big_body(size: int) -> bytes:
    """A valid JSON object of exactly `size` bytes (whitespace padding)."""
    head = b'{"reference_id": "big"}'
    return head[:-1] + b" " * (size - len(head)) + b"}"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_body_over_one_mib_is_413(
    world: World, live: httpx.Client, method: str, chunked: bool
) -> None:
    body = big_body(MIB + 1)
    path = "/devices" if method == "POST" else device_path(world)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    with world.unchanged():
        if chunked:
            response = live.request(method, path, content=chunks(), headers={"content-type": JSON})
            assert "content-length" not in response.request.headers
            assert response.request.headers["transfer-encoding"] == "chunked"
        else:
            response = live.request(method, path, content=body, headers={"content-type": JSON})
            assert response.request.headers["content-length"] == str(MIB + 1)
        assert_error(response, 413, "invalid_request", "payload_too_large", mentions=["bytes"])
    # The connection is still usable afterwards.
    assert live.get(device_path(world)).status_code == 200


def test_a_body_of_exactly_one_mib_is_accepted(world: World, live: httpx.Client) -> None:
    padded = b"{" + b" " * (MIB - 2) + b"}"
    assert len(padded) == MIB
    with world.unchanged():  # `{}` changes nothing
        response = live.patch(device_path(world), content=padded, headers={"content-type": JSON})
        assert response.status_code == 200, response.text
        assert response.json() == world.device


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/jsonp",
        "text/json",
    ],
)
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_wrong_content_type_is_415(
    world: World, live: httpx.Client, method: str, content_type: str
) -> None:
    path = "/devices" if method == "POST" else device_path(world)
    with world.unchanged():
        response = live.request(
            method,
            path,
            content=b'{"reference_id": "sneaky"}',
            headers={"content-type": content_type},
        )
        assert_error(
            response,
            415,
            "invalid_request",
            "unsupported_media_type",
            mentions=["application/json"],
        )


# --- ids and paths ----------------------------------------------------------------------


def wrong_ids(world: World) -> list[str]:
    real = world.device["id"]
    return [
        "dev_xyz",
        SEED_STYLE_ID,
        SEED_STYLE_ID.removeprefix("dev_"),
        "6ba7b810-9dad-11d1-80b4-00c04fd430c8",  # a UUID
        real.upper(),
        "DEV_" + real[4:],
        real[4:],  # the hex without the prefix
        "acc_" + real[4:],
        real + "0",
        real[:-1],
        "dev_" + secrets.token_hex(16),  # the right form, nobody's device
        world.test_device["id"],  # the test-mode device, seen with the live key
        world.other.live.post("/devices").json()["id"],  # another account's device
    ]


def test_ids_of_the_wrong_form_or_owner_are_404(world: World, live: httpx.Client) -> None:
    ids = wrong_ids(world)
    with world.unchanged():
        for device_id in ids:
            for method, body in (("GET", None), ("PATCH", {"reference_id": "x"}), ("DELETE", None)):
                response = live.request(method, f"/devices/{device_id}", json=body)
                assert_error(response, 404, "invalid_request", "not_found")


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/device",
        "/DEVICES",
        "/api/devices",
        "/devices/dev_x/extra",
        "/login/x",
        "/devices/dev_x/a/b",
        "/" + "a" * 3000,
    ],
)
def test_unknown_path_is_404(world: World, live: httpx.Client, path: str) -> None:
    with world.unchanged():
        for method in ("GET", "POST"):
            response = live.request(method, path, json={"reference_id": "x"})
            assert_error(response, 404, "invalid_request", "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/devices", {"GET", "HEAD", "POST"}),
        ("PATCH", "/devices", {"GET", "HEAD", "POST"}),
        ("DELETE", "/devices", {"GET", "HEAD", "POST"}),
        ("POST", "/devices/{id}", {"GET", "HEAD", "PATCH", "DELETE"}),
        ("PUT", "/devices/{id}", {"GET", "HEAD", "PATCH", "DELETE"}),
        ("POST", "/login", {"GET", "HEAD"}),
        ("DELETE", "/login", {"GET", "HEAD"}),
        ("POST", "/healthz", {"GET", "HEAD"}),
        ("PUT", "/openapi.json", {"GET", "HEAD"}),
    ],
)
# HEAD is served wherever GET is (RFC 9110), so Allow names it too.
def test_wrong_method_is_405_with_allow(
    world: World, live: httpx.Client, method: str, path: str, allowed: set[str]
) -> None:
    path = path.replace("{id}", world.device["id"])
    with world.unchanged():
        response = live.request(method, path, json={"reference_id": "put-here"})
        assert_error(response, 405, "invalid_request", "method_not_allowed", mentions=[method])
        assert {m.strip() for m in response.headers["allow"].split(",")} == allowed


# --- query ------------------------------------------------------------------------------

BAD_QUERIES = [
    ("limit=0", "limit"),
    ("limit=101", "limit"),
    ("limit=abc", "limit"),
    ("limit=-1", "limit"),
    ("limit=1.5", "limit"),
    ("limit=1e1", "limit"),
    ("limit=", "limit"),
    ("limit=%205", "limit"),
    ("limit=%C2%B2", "limit"),  # superscript two: a digit to str.isdigit(), not to int()
    ("limit=%EF%BC%95", "limit"),  # fullwidth five
    ("limit=" + "1" * 5000, "limit"),
    ("limit=5&limit=6", "limit"),
    ("foo=1", "foo"),
    ("Limit=5", "Limit"),
    ("starting_after=dev_xyz", "starting_after"),
    ("ending_before=dev_xyz", "ending_before"),
    ("starting_after=", "starting_after"),
    (f"starting_after={SEED_STYLE_ID}", "starting_after"),
    ("starting_after=dev_" + "0" * 32, "starting_after"),  # no such device
    ("ending_before=dev_" + "0" * 32, "ending_before"),
    ("starting_after={id}&ending_before={id}", "starting_after"),
    ("novalue", "query"),
    ("&&", "query"),
    ("&".join(f"p{i}=1" for i in range(40)), "query"),
]


@pytest.mark.parametrize(("query", "names"), BAD_QUERIES, ids=[q[:40] for q, _ in BAD_QUERIES])
def test_bad_list_query_is_400(world: World, live: httpx.Client, query: str, names: str) -> None:
    query = query.replace("{id}", world.device["id"])
    with world.unchanged():
        response = live.get(f"/devices?{query}")
        assert_error(response, 400, "invalid_request", "invalid_parameter", mentions=[names])


def test_good_list_queries_for_contrast(world: World, live: httpx.Client) -> None:
    for query in ("limit=1", "limit=100", "limit=030", "reference_id=keep-live", ""):
        response = live.get(f"/devices?{query}")
        assert response.status_code == 200, (query, response.text)
        assert response.json()["data"] == [world.device]


# --- credentials for /login (HTTP Basic) --------------------------------------------------


def authorization(header: str | bytes | None) -> dict[bytes, bytes]:
    if header is None:
        return {}
    return {b"authorization": header if isinstance(header, bytes) else header.encode("latin-1")}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def broken_basic_headers(world: World) -> list[tuple[str, str | bytes | None]]:
    account, key = world.tenant.account_id, world.tenant.live_key
    return [
        ("no header", None),
        ("empty header", ""),
        ("bearer instead", f"Bearer {world.tenant.live_token}"),
        ("scheme only", "Basic"),
        ("bad base64", "Basic !!!not-base64!!!"),
        ("base64 of non-utf8", "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()),
        ("raw non-ascii", b"Basic \xff\xfe\xfd"),
        ("missing colon", "Basic " + base64.b64encode(f"{account}{key}".encode()).decode()),
        ("empty key", basic(account, "")),
        ("empty account", basic("", key)),
        ("wrong key", basic(account, "sk_live_" + secrets.token_urlsafe(32))),
        ("wrong test key", basic(account, "sk_test_" + secrets.token_urlsafe(32))),
        ("not a key", basic(account, "password123")),
        ("key of another account", basic(account, world.other.live_key)),
        ("test key of another account", basic(account, world.other.test_key)),
        ("unknown account", basic("acc_" + secrets.token_hex(16), key)),
        ("account not an id", basic("Acme", key)),
        ("swapped", basic(key, account)),
        ("too long", basic(account, key + "x" * 1000)),
    ]


def test_broken_basic_credentials_are_403(world: World) -> None:
    with world.unchanged():
        for name, header in broken_basic_headers(world):
            headers = authorization(header)
            response = world.tenant.anon.get("/login", headers=headers)
            body = assert_error(response, 403, "invalid_request", "access_denied")
            assert "bearer_token" not in response.text, name
            assert world.tenant.live_key not in body["message"]
    # The real credentials still work after all those failures.
    response = world.tenant.anon.get(
        "/login", auth=(world.tenant.account_id, world.tenant.live_key)
    )
    assert response.status_code == 200, response.text


def test_missing_header_messages_say_what_to_send(world: World) -> None:
    login = world.tenant.anon.get("/login")
    assert_error(login, 403, "invalid_request", "access_denied", mentions=["basic"])
    devices = world.tenant.anon.get("/devices")
    assert_error(devices, 403, "invalid_request", "access_denied", mentions=["bearer"])


# --- bearer tokens ----------------------------------------------------------------------


def real_claims(world: World) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        world.tenant.live_token, options={"verify_signature": False}
    )
    return claims


def real_header(world: World) -> dict[str, Any]:
    """The header of a token devreg issued: `kid` names its signing key."""
    return {"kid": jwt.get_unverified_header(world.tenant.live_token)["kid"]}


def signing_key(server: RunningServer) -> bytes:
    return bytes.fromhex((Path(server.data_dir) / "jwt-signing.key").read_text().strip())


def test_a_token_signed_with_the_real_key_works(world: World) -> None:
    """The control for the forgeries below: the same claims, freshly signed, are accepted."""
    now = int(time.time())
    token = jwt.encode(
        {**real_claims(world), "iat": now, "exp": now + 600},
        signing_key(world.server),
        algorithm="HS256",
        headers=real_header(world),
    )
    with bearer_client(world.server, token) as client:
        response = client.get("/devices")
        assert response.status_code == 200, response.text
        assert response.json()["data"] == [world.device]


def broken_bearer_headers(world: World) -> list[tuple[str, str | bytes | None, str]]:
    claims = real_claims(world)
    now = int(time.time())
    key = signing_key(world.server)
    fresh = {**claims, "iat": now, "exp": now + 600}
    kid = real_header(world)
    return [
        ("no header", None, "authorization"),
        ("empty", "", "authorization"),
        ("basic instead", basic(world.tenant.account_id, world.tenant.live_key), "bearer"),
        ("scheme only", "Bearer", "bearer"),
        ("garbage", "Bearer garbage", "token"),
        ("three dots", "Bearer a.b.c", "token"),
        ("raw non-ascii", b"Bearer \xff\xfe.\xfd", "token"),
        ("truncated", "Bearer " + world.tenant.live_token[:-5], "token"),
        ("too long", "Bearer " + "a" * 5000, "token"),
        (
            "forged",
            "Bearer " + jwt.encode(fresh, secrets.token_bytes(32), algorithm="HS256"),
            "token",
        ),
        ("alg none", "Bearer " + jwt.encode(fresh, "", algorithm="none"), "token"),
        ("other alg, real key", "Bearer " + jwt.encode(fresh, key * 2, algorithm="HS512"), "token"),
        (
            "expired",
            "Bearer "
            + jwt.encode(
                {**claims, "iat": now - 7200, "exp": now - 3600},
                key,
                algorithm="HS256",
                headers=kid,
            ),
            "expired",
        ),
        (
            "wrong audience",
            "Bearer "
            + jwt.encode({**fresh, "aud": "someone-else"}, key, algorithm="HS256", headers=kid),
            "token",
        ),
        (
            "no exp",
            "Bearer "
            + jwt.encode(
                {k: v for k, v in fresh.items() if k != "exp"}, key, algorithm="HS256", headers=kid
            ),
            "token",
        ),
        (
            "bad subject",
            "Bearer "
            + jwt.encode({**fresh, "sub": "acc_not-hex"}, key, algorithm="HS256", headers=kid),
            "token",
        ),
        ("api key as token", "Bearer " + world.tenant.live_key, "token"),
        # Signed with the real key, but: no kid, another key's kid, a 30-year lifetime, an
        # account that does not exist (that one answered 500 on POST).
        ("no kid", "Bearer " + jwt.encode(fresh, key, algorithm="HS256"), "key"),
        (
            "other kid",
            "Bearer " + jwt.encode(fresh, key, algorithm="HS256", headers={"kid": "0" * 16}),
            "key",
        ),
        (
            "30 years",
            "Bearer "
            + jwt.encode(
                {**fresh, "exp": now + 30 * 365 * 86400}, key, algorithm="HS256", headers=kid
            ),
            "lives longer",
        ),
        (
            "no such account",
            "Bearer "
            + jwt.encode({**fresh, "sub": "acc_" + "ab" * 16}, key, algorithm="HS256", headers=kid),
            "not valid now",
        ),
    ]


def test_broken_bearer_tokens_are_403_everywhere(world: World) -> None:
    cases = broken_bearer_headers(world)
    requests = [
        ("GET", "/devices", None),
        ("POST", "/devices", {"reference_id": "intruder"}),
        ("GET", device_path(world), None),
        ("PATCH", device_path(world), {"reference_id": "intruder"}),
        ("DELETE", device_path(world), None),
    ]
    with world.unchanged():
        for name, header, mention in cases:
            headers = authorization(header)
            for method, path, body in requests:
                response = world.tenant.anon.request(method, path, json=body, headers=headers)
                assert response.status_code == 403, (name, method, path, response.text)
                assert_error(response, 403, "invalid_request", "access_denied", mentions=[mention])


# --- never a 5xx ------------------------------------------------------------------------


def nasty_requests(world: World) -> list[dict[str, Any]]:
    device = device_path(world)
    weird_headers: list[dict[bytes, bytes]] = [
        {b"flatpeak-version": b"\xff\xfe"},
        {b"content-type": b"application/json; charset=\xff"},
        {b"content-type": b"application/json; charset=latin-1"},
        {b"content-type": b";;;"},
        {b"authorization": b"Bearer " + b"\x80" * 100},
        {b"authorization": b"Basic \xff"},
    ]
    requests: list[dict[str, Any]] = []
    for headers in weird_headers:
        for method, path in (("GET", "/login"), ("GET", "/devices"), ("PATCH", device)):
            requests.append({"method": method, "url": path, "headers": headers, "content": b"{}"})
    for body in (
        b"[" * 100_000,
        b'{"reference_id":' * 50_000,
        b"\x00" * 1000,
        b"\xef\xbb\xbf{}",
        b'{"reference_id": "\\ud800\\ud800"}',
        b'{"reference_id": 1' + b"0" * 5000 + b"}",
    ):
        for method, path in write_targets(world):
            requests.append(
                {
                    "method": method,
                    "url": path,
                    "content": body,
                    "headers": {b"content-type": b"application/json"},
                }
            )
    for query in (
        "limit=%00",
        "reference_id=%ff%fe",
        "reference_id=" + "x" * 8000,
        "starting_after=%ff",
        "limit=%F0%9F%98%80",
        "%=%",
        "=1",
    ):
        requests.append({"method": "GET", "url": f"/devices?{query}"})
    for path in (
        "/devices/%ff",
        "/devices/%00",
        "/devices/..%2f..%2fetc%2fpasswd",
        "/%2e%2e/",
        "/devices/" + "\u2603" * 50,
        "/docs/static/%2e%2e%2fpyproject.toml",
    ):
        requests.append({"method": "GET", "url": path})
    return requests


def test_nothing_makes_a_server_error(world: World) -> None:
    client = world.tenant.live
    with world.unchanged():
        for request in nasty_requests(world):
            headers: dict[bytes, bytes] = {**dict(client.headers.raw), **request.pop("headers", {})}
            response = client.request(**request, headers=headers)
            assert response.status_code < 500, (request, response.status_code, response.text)
            if response.status_code >= 400:
                assert response.headers["content-type"].startswith("application/json")
                assert response.json()["object"] == "error"
