"""Every bad request to dialect D gets `{"errors": [{"code", "message"}]}` with a 4xx whose
message names the problem, never a 5xx, and writes nothing: each test compares the
account's divisions, profiles, devices and certificates before and after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.dialect_d.helpers import (
    all_devices,
    assert_errors,
    field_ids,
    make_device,
    make_profile,
    new_account,
)
from tests.support.server import RunningServer

MIB = 1024 * 1024
JSON = "application/json"


class World:
    """One account per module and store, with a profile and a device that must not change."""

    def __init__(self, server: RunningServer) -> None:
        self.account = new_account(server, "Acme")
        self.client = self.account.live
        self.profile = make_profile(self.client, "Sensor")
        self.serial = field_ids(self.profile)["serial"]
        self.device = make_device(self.client, "gw-1", self.profile, {"serial": "SN-1"})
        self.device_path = f"/device/{self.device['id']}"

    def snapshot(self) -> tuple[Any, ...]:
        return (
            self.client.get("/division").json(),
            self.client.get("/device-profile").json(),
            all_devices(self.client),
            all_devices(self.account.test),
            self.client.get(f"{self.device_path}/certificate").json(),
        )

    @contextmanager
    def unchanged(self) -> Iterator[None]:
        before = self.snapshot()
        yield
        assert self.snapshot() == before, "a refused request wrote something"
        assert before[2] == [self.device]


@pytest.fixture(scope="module")
def world(d_server: RunningServer) -> Iterator[World]:
    made = World(d_server)
    try:
        yield made
    finally:
        made.account.close()


def write_targets(world: World) -> list[tuple[str, str]]:
    return [
        ("POST", "/division"),
        ("POST", "/device-profile"),
        ("POST", "/device"),
        ("PUT", world.device_path),
        ("POST", f"{world.device_path}/certificate"),
    ]


TARGET_IDS = ["division", "profile", "device", "put", "certificate"]

# --- bodies ------------------------------------------------------------------------------------

BAD_BODIES = [
    # (id, raw body, words the message must contain); each is refused before any field
    ("truncated", b'{"', ["JSON"]),
    ("open brace", b"{", ["JSON"]),
    ("bare word", b"{x}", ["JSON"]),
    ("single quotes", b"{'device_identifier': 'x'}", ["JSON"]),
    ("not utf-8", b'{"\xff\xfe": 1}', ["JSON"]),
    ("lone surrogate", b'{"\\udc00": 1}', ["JSON"]),
    ("array", b"[]", ["object", "array"]),
    ("string", b'"New Device"', ["object", "str"]),
    ("number", b"42", ["object"]),
    ("null", b"null", ["object", "null"]),
    ("true", b"true", ["object"]),
    ("huge number", b'{"generate_key": 1e999999}', []),
    ("deep nesting", b'{"fields": ' + b"[" * 5000 + b"]" * 5000 + b"}", []),
    ("unknown field", b'{"colour": "red"}', ["colour"]),
    ("wrong case field", b'{"Device_Identifier": "x"}', ["Device_Identifier"]),
]


@pytest.mark.parametrize(
    ("body", "mentions"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
@pytest.mark.parametrize("target", range(5), ids=TARGET_IDS)
def test_bad_body_is_400_invalid_input_and_writes_nothing(
    world: World, target: int, body: bytes, mentions: list[str]
) -> None:
    method, path = write_targets(world)[target]
    with world.unchanged():
        response = world.client.request(method, path, content=body, headers={"content-type": JSON})
        assert_errors(response, 400, "invalid_input", mentions=mentions)


@pytest.mark.parametrize(
    "body", [b"{}{}", b"{} x", b"{},"], ids=["two objects", "garbage", "comma"]
)
@pytest.mark.parametrize("target", [3, 4], ids=["put", "certificate"])
def test_trailing_data_after_the_object_is_400(world: World, target: int, body: bytes) -> None:
    method, path = write_targets(world)[target]
    with world.unchanged():
        response = world.client.request(method, path, content=body, headers={"content-type": JSON})
        assert_errors(response, 400, "invalid_input", mentions=["JSON"])


WRONG_TYPES = [
    # (id, target, JSON body, words)
    ("division name list", 0, {"name": ["x"]}, ["name"]),
    ("profile fields string", 1, {"name": "P", "fields": "serial"}, ["fields"]),
    ("profile field name number", 1, {"name": "P", "fields": [{"name": 1}]}, ["name"]),
    ("profile flag null", 1, {"name": "P", "device_api_allow_write": None}, ["allow_write"]),
    ("profile division number", 1, {"name": "P", "division_id": 5}, ["division_id"]),
    ("device identifier object", 2, {"device_identifier": {"a": 1}}, ["device_identifier"]),
    ("device fields object", 2, {"device_identifier": "x", "fields": {}}, ["fields"]),
    ("device field value list", 2,
     {"device_identifier": "x", "fields": [{"id": "x", "value": ["v"]}]}, ["value"]),
    ("device division not uuid", 2,
     {"device_identifier": "x", "division_id": "Mock Division 1"}, ["division_id", "UUID"]),
    ("device profile not uuid", 2,
     {"device_identifier": "x", "device_profile_id": "a81a431a"}, ["device_profile_id", "UUID"]),
    ("device field id not uuid", 2,
     {"device_identifier": "x", "fields": [{"id": "417c328e", "value": "v"}]}, ["fields[0].id"]),
    ("put fields string", 3, {"fields": "all"}, ["fields"]),
    ("put flag string", 3, {"device_api_allow_write": "true"}, ["device_api_allow_write"]),
    # the server's keys, sent back from a read, are ignored, but of the type GET shows
    ("put last_seen number", 3, {"last_seen": 1647947541}, ["last_seen"]),
    ("put account list", 3, {"account_id": ["1d1ec1ec-6502-11e9-a923"]}, ["account_id"]),
    ("put division string", 3, {"division": "Default"}, ["division"]),
    ("put division", 3, {"division_id": "fd5faa1e-623a-47a9-831b-b9397c33395f"}, ["division_id"]),
    ("put field value number", 3, {"fields": [{"id": "x", "value": 1}]}, ["value"]),
    ("certificate csr list", 4, {"csr": ["x"]}, ["csr"]),
    ("certificate generate number", 4, {"generate_key": 1}, ["generate_key"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("target", "body", "mentions"),
    [case[1:] for case in WRONG_TYPES],
    ids=[case[0] for case in WRONG_TYPES],
)
def test_wrong_types_are_400_naming_the_field(
    world: World, target: int, body: dict[str, Any], mentions: list[str]
) -> None:
    method, path = write_targets(world)[target]
    with world.unchanged():
        response = world.client.request(method, path, json=body)
        assert_errors(response, 400, "invalid_input", mentions=mentions)


@pytest.mark.parametrize("target", range(5), ids=TARGET_IDS)
def test_body_over_one_mib_is_413(world: World, target: int) -> None:
    method, path = write_targets(world)[target]
    body = b'{"name": "' + b"x" * MIB + b'"}'
    with world.unchanged():
        response = world.client.request(method, path, content=body, headers={"content-type": JSON})
        assert_errors(response, 413, "payload_too_large", mentions=["larger"])

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted as it comes
            yield b'{"name": "'
            for _ in range(17):
                yield b"x" * 65536
            yield b'"}'

        response = world.client.request(
            method, path, content=chunks(), headers={"content-type": JSON}
        )
        assert_errors(response, 413, "payload_too_large")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
@pytest.mark.parametrize("target", range(5), ids=TARGET_IDS)
def test_other_content_type_is_415(world: World, target: int, content_type: str) -> None:
    method, path = write_targets(world)[target]
    with world.unchanged():
        response = world.client.request(
            method, path, content=b'{"name": "x"}', headers={"content-type": content_type}
        )
        assert_errors(response, 415, "unsupported_media_type", mentions=["application/json"])


def test_json_content_type_with_charset_and_in_capitals_is_accepted(world: World) -> None:
    for content_type in ("application/json; charset=utf-8", "Application/JSON"):
        response = world.client.put(
            world.device_path,
            content=b'{"fields": [{"id": "%s", "value": "SN-1"}]}' % world.serial.encode(),
            headers={"content-type": content_type},
        )
        assert response.status_code == 201, response.text
        assert response.json()["fields"] == world.device["fields"]
        world.device = response.json()  # a new version: what the other tests compare with


# --- query parameters --------------------------------------------------------------------------

BAD_QUERIES = [
    ("limit=0", ["limit", "1000"]),
    ("limit=1001", ["limit", "1000"]),
    ("limit=-1", ["limit"]),
    ("limit=abc", ["limit"]),
    ("limit=", ["limit"]),
    ("limit=1.5", ["limit"]),
    ("limit=99999999999999999999", ["limit"]),
    ("offset=-1", ["offset"]),
    ("offset=x", ["offset"]),
    ("limit=5&limit=6", ["limit", "more than once"]),
    ("colour=red", ["colour"]),
    ("division_id=Default", ["division_id", "UUID"]),
    ("device_profile_id=123", ["device_profile_id", "UUID"]),
    ("created_from=yesterday", ["created_from", "ISO 8601"]),
    ("created_to=2020-13-01", ["created_to"]),
    ("updated_from=2020-04-22T25:00:00Z", ["updated_from"]),
    ("updated_to=1587539600", ["updated_to"]),
    ("device_identifier=a%00b", ["device_identifier", "control"]),
    ("device_identifier=a%0Ab", ["device_identifier", "control"]),
    ("a=1&&b", ["query"]),
]


@pytest.mark.parametrize(("query", "mentions"), BAD_QUERIES, ids=[q for q, _ in BAD_QUERIES])
def test_bad_list_query_is_400_naming_the_parameter(
    world: World, query: str, mentions: list[str]
) -> None:
    response = world.client.get(f"/device?{query}")
    assert_errors(response, 400, "invalid_input", mentions=mentions)


def test_extreme_but_valid_list_queries_are_answered(world: World) -> None:
    for query in (
        "limit=1000&offset=9999999999",
        "created_from=0001-01-01T00:00:00%2B01:00",
        "created_to=9999-12-31",
        "updated_to=9999-12-31T23:59:59-01:00",
        "device_identifier=" + "x" * 2000,
        "device_identifier=%E2%98%83",
    ):
        response = world.client.get(f"/device?{query}")
        assert response.status_code == 200, (query, response.text)


@pytest.mark.parametrize(
    "path",
    ["/division/Default", "/division/123", "/device-profile/zzz", "/device-profile/%00"],
)
def test_bad_uuid_for_a_division_or_profile_is_400(world: World, path: str) -> None:
    assert_errors(world.client.get(path), 400, "invalid_input", mentions=["UUID"])


# --- methods and paths --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/device"),
        ("DELETE", "/device"),
        ("POST", "/device/{id}"),
        ("PATCH", "/device/{id}"),
        ("GET", "/device/{id}/disable"),
        ("DELETE", "/division"),
        ("PUT", "/device-profile"),
    ],
)
def test_wrong_method_is_405_in_dialect_ds_shape(world: World, method: str, path: str) -> None:
    with world.unchanged():
        response = world.client.request(method, path.format(id=world.device["id"]))
        assert_errors(response, 405, "method_not_allowed", mentions=[method])
        assert response.headers["allow"]


def test_unknown_path_under_dialect_ds_prefix_is_in_dialect_ds_shape(world: World) -> None:
    response = world.client.get("/devices")
    assert response.status_code == 404
    assert set(response.json()) == {"errors"}
    assert response.json()["errors"][0]["code"] == "resource_not_found"  # DigiCert ONE's


def test_nothing_went_wrong_on_the_server(world: World) -> None:
    """No request of this module was answered with a 5xx or logged an unhandled error."""
    log = world.account.server.log()
    assert "unhandled error" not in log
    assert "Traceback" not in log
    statuses = [
        line.split('" ')[1].split()[0] for line in log.splitlines() if "devreg.access" in line
    ]
    assert statuses and not [s for s in statuses if s.startswith("5")]
