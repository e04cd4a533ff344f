"""The text rule (`core/text.py`) at every door, on a real server over both stores: each
forbidden class of character and whitespace-only values are refused with a 400 in the
dialect's envelope (dialect F, dialect D, the list filters, bulk import) and change
nothing; NFC and NFD spellings of one value are one value (a duplicate, and found by
either spelling)."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dialect_d.helpers import Account, assert_errors, make_profile, new_account
from tests.dialect_f.helpers import Tenant, anonymous_client, bearer_client, login, new_tenant
from tests.support.server import STORES, RunningServer, run_cli, store_server

# One of each class the rule refuses, inside otherwise ordinary text.
FORBIDDEN = {
    "C1 control U+0085": "a\u0085b",
    "line separator U+2028": "a\u2028b",
    "paragraph separator U+2029": "a\u2029b",
    "noncharacter U+FFFF": "a\uffffb",
    "noncharacter U+FDD0": "a\ufdd0b",
    "noncharacter U+10FFFF": "a\U0010ffffb",
    "zero-width space U+200B": "a\u200bb",
    "zero-width joiner U+200D": "a\u200db",
    "bidi override U+202E": "a\u202eb",
    "bidi isolate U+2066": "a\u2066b",
    "byte order mark U+FEFF": "\ufeffab",
    "tag character U+E0041": "a\U000e0041b",
    # default-ignorable beyond Cf (found by review): invisible, so look-alikes
    "variation selector U+FE0F": "caf\u00e9\ufe0f",
    "Hangul filler U+3164": "\u3164",
    "combining grapheme joiner U+034F": "a\u034fb",
}
WHITESPACE_ONLY = {"spaces": "   ", "no-break space": "\u00a0", "ideographic space": "\u3000"}
BAD = {**FORBIDDEN, **WHITESPACE_ONLY}
CAFE_NFC = unicodedata.normalize("NFC", "café")
CAFE_NFD = unicodedata.normalize("NFD", "café")


@pytest.fixture(scope="module", params=STORES)
def text_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with store_server(request, tmp_path_factory) as running:
        yield running


@pytest.fixture
def tenant(text_server: RunningServer) -> Iterator[Tenant]:
    made = new_tenant(text_server)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def d_account(text_server: RunningServer) -> Iterator[Account]:
    made = new_account(text_server)
    try:
        yield made
    finally:
        made.close()


def assert_f_refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, (response.status_code, response.text)
    body = response.json()
    assert body["object"] == "error" and body["code"] == "invalid_parameter", body
    assert field in body["message"], body


def f_references(tenant: Tenant) -> list[str]:
    listed = tenant.live.get("/devices", params={"limit": 100})
    assert listed.status_code == 200, listed.text
    return [device["reference_id"] for device in listed.json()["data"]]


@pytest.mark.parametrize("value", BAD.values(), ids=BAD.keys())
def test_dialect_f_refuses_the_reference(tenant: Tenant, value: str) -> None:
    assert_f_refused(tenant.live.post("/devices", json={"reference_id": value}), "reference_id")
    made = tenant.live.post("/devices", json={"reference_id": "kept"})
    assert made.status_code == 201, made.text
    patched = tenant.live.patch(f"/devices/{made.json()['id']}", json={"reference_id": value})
    assert_f_refused(patched, "reference_id")
    assert_f_refused(tenant.live.get("/devices", params={"reference_id": value}), "reference_id")
    assert f_references(tenant) == ["kept"]  # nothing else was made or changed


@pytest.mark.parametrize("value", BAD.values(), ids=BAD.keys())
def test_dialect_d_refuses_the_identifier_and_names(d_account: Account, value: str) -> None:
    client = d_account.live
    made = client.post("/device", json={"device_identifier": "kept"})
    assert made.status_code == 201, made.text
    assert_errors(
        client.post("/device", json={"device_identifier": value}),
        400,
        "invalid_input",
        mentions=["device_identifier"],
    )
    assert_errors(
        client.put(f"/device/{made.json()['id']}", json={"device_identifier": value}),
        400,
        "invalid_input",
        mentions=["device_identifier"],
    )
    assert_errors(
        client.get("/device", params={"device_identifier": value}),
        400,
        "invalid_input",
        mentions=["device_identifier"],
    )
    listed = client.get("/device").json()
    assert [d["device_identifier"] for d in listed["records"]] == ["kept"], listed
    # Names: a division, a profile, a profile's field.
    name = f"x{value}y"
    if value.isspace():
        name = value  # whitespace only (inside a name it is ordinary text)
    assert_errors(client.post("/division", json={"name": name}), 400, "invalid_input")
    assert_errors(client.post("/device-profile", json={"name": name}), 400, "invalid_input")
    field = {"name": "P", "fields": [{"name": name, "mandatory": False}]}
    assert_errors(client.post("/device-profile", json=field), 400, "invalid_input")
    assert [d["name"] for d in client.get("/division").json()["records"]] == ["Default"]
    assert [p["name"] for p in client.get("/device-profile").json()["records"]] == ["Default"]


def test_nfc_and_nfd_are_one_reference(tenant: Tenant) -> None:
    made = tenant.live.post("/devices", json={"reference_id": CAFE_NFD})
    assert made.status_code == 201, made.text
    assert made.json()["reference_id"] == CAFE_NFC  # stored (and shown) in NFC
    again = tenant.live.post("/devices", json={"reference_id": CAFE_NFC})
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "duplicate_reference"
    for spelling in (CAFE_NFC, CAFE_NFD):
        found = tenant.live.get("/devices", params={"reference_id": spelling}).json()["data"]
        assert [device["id"] for device in found] == [made.json()["id"]], spelling


def test_nfc_and_nfd_are_one_identifier_and_one_name(d_account: Account) -> None:
    client = d_account.live
    made = client.post("/device", json={"device_identifier": CAFE_NFC})
    assert made.status_code == 201, made.text
    assert_errors(
        client.post("/device", json={"device_identifier": CAFE_NFD}),
        400,
        "invalid_input",
        mentions=[f"identifier {CAFE_NFC} already exists"],  # one identifier: the same
    )
    for spelling in (CAFE_NFC, CAFE_NFD):
        found = client.get("/device", params={"device_identifier": spelling}).json()
        assert [device["id"] for device in found["records"]] == [made.json()["id"]], spelling
    division = client.post("/division", json={"name": CAFE_NFD})
    assert division.status_code == 201, division.text
    assert division.json()["name"] == CAFE_NFC
    duplicate = client.post("/division", json={"name": CAFE_NFC})
    assert_errors(duplicate, 400, "invalid_input")
    profile = make_profile(client, CAFE_NFC, fields=())
    assert profile["name"] == CAFE_NFC
    assert_errors(client.post("/device-profile", json={"name": CAFE_NFD}), 400, "invalid_input")


# --- bulk import: the same rule, line by line, and nothing written


def import_lines(server: RunningServer, account_id: str, path: Path, *lines: Any) -> Any:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return run_cli(server.env, "import", "devices", str(path), "--account", account_id)


@pytest.mark.parametrize("value", BAD.values(), ids=BAD.keys())
def test_bulk_import_refuses_the_reference_and_identifier(
    d_account: Account, tmp_path: Path, value: str
) -> None:
    server = d_account.server
    for line in ({"reference_id": value}, {"device_identifier": value}):
        done = import_lines(server, d_account.account_id, tmp_path / "in.jsonl", {}, line)
        assert done.returncode != 0, done.stdout
        assert "line 2" in done.stderr and next(iter(line)) in done.stderr, done.stderr
    assert d_account.live.get("/device").json()["records"] == []  # all or nothing


def test_bulk_import_treats_nfc_and_nfd_as_one_value(d_account: Account, tmp_path: Path) -> None:
    server, account_id = d_account.server, d_account.account_id
    both = [{"reference_id": CAFE_NFC}, {"reference_id": CAFE_NFD}]
    done = import_lines(server, account_id, tmp_path / "twice.jsonl", *both)
    assert done.returncode != 0 and "also on line 1" in done.stderr, done.stderr
    # Against the store: a device made through the API, then the other spelling imported.
    made = d_account.live.post("/device", json={"device_identifier": CAFE_NFC})
    assert made.status_code == 201, made.text
    done = import_lines(
        server, account_id, tmp_path / "taken.jsonl", {"device_identifier": CAFE_NFD}
    )
    assert done.returncode != 0, done.stdout
    # And an import of the NFD spelling alone is stored in NFC, its profile found by name.
    make_profile(d_account.live, CAFE_NFC, fields=())
    line = {"reference_id": "ref-" + CAFE_NFD, "device_profile": {"name": CAFE_NFD}}
    done = import_lines(server, account_id, tmp_path / "one.jsonl", line)
    assert done.returncode == 0, done.stderr
    devices = d_account.live.get("/device").json()["records"]
    assert sorted(d["device_profile"]["name"] for d in devices) == sorted(["Default", CAFE_NFC])
    with anonymous_client(server) as anonymous:
        token = login(anonymous, d_account.account_id, d_account.live_key)
    with bearer_client(server, token) as f_client:
        found = f_client.get("/devices", params={"reference_id": "ref-" + CAFE_NFD}).json()
    assert [device["reference_id"] for device in found["data"]] == ["ref-" + CAFE_NFC]


@pytest.mark.parametrize("end", ["\u0085", "\u2028", "\u2029", "\n", "\x1f"])
def test_a_name_loses_surrounding_whitespace_before_the_rule_applies(
    d_account: Account, end: str
) -> None:
    """str.strip() counts these as whitespace: at either end of a name they are dropped
    (the stored name has none), inside it they are refused."""
    made = d_account.live.post("/division", json={"name": f"{end}Plant{end}"})
    assert made.status_code == 201, made.text
    assert made.json()["name"] == "Plant"
    inside = d_account.live.post("/division", json={"name": f"Pl{end}ant"})
    assert_errors(inside, 400, "invalid_input", mentions=["name"])
