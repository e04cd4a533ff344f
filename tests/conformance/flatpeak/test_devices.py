"""Flatpeak's login and device pages, each documented example sent as written with devreg's
ids and host: the status, the field names and types, the documented codes."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from tests.conformance.conftest import Vendors
from tests.dialect_f.helpers import (
    ACCOUNT_ID,
    DEVICE_FIELDS,
    DEVICE_ID,
    anonymous_client,
    parse_time,
)

WHOLE_ERROR = {"object", "live_mode", "context", "type", "code", "message", "time_created"}


def error_of(response: httpx.Response, status: int, type_: str, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    assert set(body) == WHOLE_ERROR, body
    assert (body["object"], body["type"], body["code"]) == ("error", type_, code), body
    assert isinstance(body["live_mode"], bool) and isinstance(body["context"], str), body
    assert isinstance(body["message"], str) and body["message"], body
    return body


def device_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    assert set(body) - {"last_seen"} == DEVICE_FIELDS, body
    assert DEVICE_ID.match(body["id"]) and body["object"] == "device", body
    assert isinstance(body["live_mode"], bool) and isinstance(body["reference_id"], str)
    assert ACCOUNT_ID.match(body["account_id"]), body
    parse_time(body["time_created"])
    return body


def claims_of(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def part(text: str) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(
            base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        )
        return decoded

    header, claims, _ = token.split(".")
    return part(header), part(claims)


def test_login_as_documented(vendors: Vendors) -> None:
    with anonymous_client(vendors.server) as anon:
        answer = anon.get("/login", auth=(vendors.d.account_id, vendors.d.live_key))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"bearer_token", "expires_in", "live_mode"}
        assert body["expires_in"] == 3600 and body["live_mode"] is True
        header, claims = claims_of(body["bearer_token"])
        assert header["alg"] == "HS256" and header["typ"] == "JWT"
        assert claims["account_id"] == claims["sub"] == vendors.d.account_id
        assert claims["live_mode"] is True
        assert claims["nbf"] <= claims["iat"] < claims["exp"]
        assert claims["exp"] - claims["iat"] == body["expires_in"]
        # "Authenticate with bearer you obtained from authentication endpoint"
        listed = anon.get("/devices", headers={"authorization": "Bearer " + body["bearer_token"]})
        assert listed.status_code == 200, listed.text
        refused = anon.get("/login", auth=(vendors.d.account_id, "sk_live_" + "0" * 43))
        error_of(refused, 403, "invalid_request", "access_denied")


def test_test_keys_make_test_mode_objects(vendors: Vendors) -> None:
    assert vendors.d.test_key.startswith("sk_test_") and vendors.d.live_key.startswith("sk_live_")
    test = device_of(vendors.f_test.post("/devices", json={"reference_id": "T1"}), 201)
    live = device_of(vendors.f_live.post("/devices", json={"reference_id": "L1"}), 201)
    assert test["live_mode"] is False and live["live_mode"] is True
    assert [d["id"] for d in vendors.f_test.get("/devices").json()["data"]] == [test["id"]]
    assert [d["id"] for d in vendors.f_live.get("/devices").json()["data"]] == [live["id"]]
    error_of(vendors.f_live.get(f"/devices/{test['id']}"), 404, "invalid_request", "not_found")


def test_create_device_with_and_without_reference(vendors: Vendors) -> None:
    made = device_of(vendors.f_live.post("/devices", json={"reference_id": "DEV1234567890"}), 201)
    assert made["reference_id"] == "DEV1234567890"
    assert made["account_id"] == vendors.d.account_id and made["live_mode"] is True
    assert made["id"].startswith("dev_")
    bare = device_of(vendors.f_live.post("/devices", json={}), 201)
    assert bare["reference_id"] == ""


def test_list_newest_first_in_pages_of_30(vendors: Vendors) -> None:
    made = [
        device_of(vendors.f_live.post("/devices", json={"reference_id": f"R{n:02}"}), 201)
        for n in range(32)
    ]
    answer = vendors.f_live.get("/devices")
    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert set(page) == {"object", "url", "has_more", "data"}
    assert (page["object"], page["url"], page["has_more"]) == ("list", "/devices", True)
    assert [d["id"] for d in page["data"]] == [d["id"] for d in reversed(made)][:30]
    # limit is 1 to 100; seed 000 names no code for a bad one: devreg's is invalid_parameter
    for bad in ("0", "101", "ten"):
        refused = vendors.f_live.get("/devices", params={"limit": bad})
        assert "limit" in error_of(refused, 400, "invalid_request", "invalid_parameter")["message"]
    assert len(vendors.f_live.get("/devices", params={"limit": 100}).json()["data"]) == 32


def test_list_cursors_and_reference_filter(vendors: Vendors) -> None:
    made = [
        device_of(vendors.f_live.post("/devices", json={"reference_id": f"C{n}"}), 201)
        for n in range(5)
    ]
    newest_first = [d["id"] for d in reversed(made)]
    first = vendors.f_live.get("/devices", params={"limit": 2}).json()
    assert [d["id"] for d in first["data"]] == newest_first[:2] and first["has_more"]
    second = vendors.f_live.get(
        "/devices", params={"limit": 2, "starting_after": first["data"][-1]["id"]}
    ).json()
    assert [d["id"] for d in second["data"]] == newest_first[2:4]
    back = vendors.f_live.get(
        "/devices", params={"limit": 2, "ending_before": second["data"][0]["id"]}
    ).json()
    assert [d["id"] for d in back["data"]] == newest_first[:2]
    only = vendors.f_live.get("/devices", params={"reference_id": "C3"}).json()
    assert [d["id"] for d in only["data"]] == [made[3]["id"]] and not only["has_more"]


def test_get_device(vendors: Vendors) -> None:
    made = device_of(vendors.f_live.post("/devices", json={"reference_id": "G1"}), 201)
    assert device_of(vendors.f_live.get(f"/devices/{made['id']}"), 200) == made
    missing = vendors.f_live.get("/devices/dev_" + "0" * 32)
    error_of(missing, 404, "invalid_request", "not_found")


def test_patch_as_seed_000(vendors: Vendors) -> None:
    made = device_of(vendors.f_live.post("/devices", json={"reference_id": "DEV1234567890"}), 201)
    patched = vendors.f_live.patch(
        f"/devices/{made['id']}",
        json={"reference_id": "DEV0987654321"},
        headers={"Flatpeak-Version": "2025-09-14.anode"},
    )
    assert device_of(patched, 200)["reference_id"] == "DEV0987654321"
    # "parameters not provided are left unchanged"
    same = device_of(vendors.f_live.patch(f"/devices/{made['id']}", json={}), 200)
    assert same["reference_id"] == "DEV0987654321"
    other = device_of(vendors.f_live.post("/devices", json={"reference_id": "TAKEN"}), 201)
    taken = vendors.f_live.patch(f"/devices/{made['id']}", json={"reference_id": "TAKEN"})
    body = error_of(taken, 409, "conflict", "duplicate_reference")
    assert body["message"] == "Reference ID already exists"
    missing = vendors.f_live.patch("/devices/dev_" + "0" * 32, json={"reference_id": "X"})
    error_of(missing, 404, "invalid_request", "not_found")
    with anonymous_client(vendors.server) as anon:
        denied = anon.patch(f"/devices/{other['id']}", json={"reference_id": "X"})
    error_of(denied, 403, "invalid_request", "access_denied")
    assert device_of(vendors.f_live.get(f"/devices/{other['id']}"), 200)["reference_id"] == "TAKEN"


def test_delete_device(vendors: Vendors) -> None:
    made = device_of(vendors.f_live.post("/devices", json={"reference_id": "D1"}), 201)
    answer = vendors.f_live.delete(f"/devices/{made['id']}")
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"message": "Accepted"}
    error_of(vendors.f_live.get(f"/devices/{made['id']}"), 404, "invalid_request", "not_found")
    assert vendors.f_live.get("/devices").json()["data"] == []
