"""API keys limited to divisions (issue 15), in process: such a key, and the bearer tokens
made from it, see and act on the devices, profiles, divisions and certificates of its
divisions only; everything else answers as another account's would (D's 400
`entity_not_found`, F's 404), and nothing outside changes. What would reach past its
divisions (a new division, the account's audit log, a device in the default division, a
key with a wider limit) is a 403."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.dialect_d.helpers import example_device_body, example_profile_body
from tests.dialect_d.test_api_keys import assert_d_error, key_client, token_client
from tests.support.inprocess import AppClient


def f_id(device: dict[str, Any]) -> str:
    return "dev_" + uuid.UUID(device["id"]).hex


@dataclass
class Fleet:
    """A division North with a profile and a device, and a device in the default division
    (with a certificate) made by the owner; the key limited to North and its clients."""

    north: dict[str, Any]
    north_profile: dict[str, Any]
    north_device: dict[str, Any]
    default_profile: dict[str, Any]
    outside: dict[str, Any]  # in the default division
    outside_cert: dict[str, Any]
    limited: dict[str, Any]  # the creation answer: secret and key
    d: httpx.AsyncClient
    f: httpx.AsyncClient


async def made(response: httpx.Response, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
async def fleet(app_client: AppClient) -> Fleet:
    owner = app_client.d()
    north = await made(await owner.post("/division", json={"name": "North"}))
    north_profile = await made(
        await owner.post(
            "/device-profile", json={**example_profile_body("North"), "division_id": north["id"]}
        )
    )
    north_device = await made(
        await owner.post("/device", json=example_device_body(north_profile, "north-1"))
    )
    default_profile = await app_client.profile("Default division's")
    outside = await app_client.device(default_profile, "south-1")
    outside_cert = await made(
        await owner.post(f"/device/{outside['id']}/certificate", json={"generate_key": True})
    )
    limited = await made(
        await owner.post("/api-key", json={"name": "north only", "division_ids": [north["id"]]})
    )
    d = key_client(app_client, limited["secret"])
    f = await token_client(app_client, limited["secret"])
    return Fleet(
        north, north_profile, north_device, default_profile, outside, outside_cert, limited, d, f
    )


def assert_not_found(response: httpx.Response, what: str) -> None:
    assert_d_error(response, 400, "entity_not_found", what, "does not exist")


async def test_the_key_is_made_limited_and_says_so(app_client: AppClient, fleet: Fleet) -> None:
    key = fleet.limited["key"]
    assert key["division_ids"] == [fleet.north["id"]]
    listed = await made(await app_client.d().get(f"/api-key/{key['id']}"), 200)
    assert listed["division_ids"] == [fleet.north["id"]]


async def test_d_lists_hold_only_the_key_s_divisions(app_client: AppClient, fleet: Fleet) -> None:
    devices = await made(await fleet.d.get("/device"), 200)
    assert [d["id"] for d in devices["records"]] == [fleet.north_device["id"]]
    assert devices["total"] == 1
    # A filter naming a division outside it finds nothing, as another account's id would.
    default_division = fleet.default_profile["division"]["id"]
    filtered = await made(
        await fleet.d.get("/device", params={"division_id": default_division}), 200
    )
    assert (filtered["records"], filtered["total"]) == ([], 0)
    divisions = await made(await fleet.d.get("/division"), 200)
    assert [d["id"] for d in divisions["records"]] == [fleet.north["id"]]
    assert divisions["total"] == 1
    profiles = await made(await fleet.d.get("/device-profile"), 200)
    assert [p["id"] for p in profiles["records"]] == [fleet.north_profile["id"]]
    assert profiles["total"] == 1
    # The owner still sees all of it.
    everything = await made(await app_client.d().get("/device"), 200)
    assert everything["total"] == 2


async def test_d_names_outside_the_divisions_are_not_found_and_change_nothing(
    app_client: AppClient, fleet: Fleet
) -> None:
    outside = fleet.outside["id"]
    before = await made(await app_client.d().get(f"/device/{outside}"), 200)
    d = fleet.d
    for response in (
        await d.get(f"/device/{outside}"),
        await d.put(f"/device/{outside}", json={"device_identifier": "taken"}),
        await d.delete(f"/device/{outside}"),
        await d.put(f"/device/{outside}/disable"),
        await d.get(f"/device/{outside}/certificate"),
        await d.post(f"/device/{outside}/certificate", json={"generate_key": True}),
        await d.put(f"/device/{outside}/certificate/revoke", json={}),
        await d.post(f"/device/{outside}/enrollment-secret"),
        await d.get(f"/device/{outside}/history"),
    ):
        assert_not_found(response, "device")
    assert_not_found(
        await d.get(f"/division/{fleet.default_profile['division']['id']}"), "division"
    )
    assert_not_found(await d.get(f"/device-profile/{fleet.default_profile['id']}"), "profile")
    assert_not_found(
        await d.put(f"/device-profile/{fleet.default_profile['id']}", json={"name": "taken"}),
        "profile",
    )
    cert = fleet.outside_cert["certificate_id"]
    assert_not_found(await d.put(f"/certificate/{cert}/revoke", json={}), "certificate")
    assert_not_found(
        await d.put(f"/certificate/{cert}/revoke", json={"reason": "keyCompromise"}),
        "certificate",
    )
    owner = app_client.d()
    assert await made(await owner.get(f"/device/{outside}"), 200) == before
    (listed,) = (await made(await owner.get(f"/device/{outside}/certificate"), 200))["records"]
    assert listed["status"] != "REVOKED", listed
    profile = await made(await owner.get(f"/device-profile/{fleet.default_profile['id']}"), 200)
    assert profile["name"] == fleet.default_profile["name"]


async def test_d_acts_inside_its_divisions(fleet: Fleet) -> None:
    device = fleet.north_device["id"]
    assert (await made(await fleet.d.get(f"/device/{device}"), 200))["id"] == device
    assert (await fleet.d.put(f"/device/{device}/disable")).status_code == 200
    assert (await fleet.d.put(f"/device/{device}/enable")).status_code == 200
    cert = await made(
        await fleet.d.post(f"/device/{device}/certificate", json={"generate_key": True})
    )
    revoked = await made(
        await fleet.d.put(f"/certificate/{cert['certificate_id']}/revoke", json={}), 200
    )
    assert revoked["status"] == "REVOKED"
    second = await made(
        await fleet.d.post("/device", json=example_device_body(fleet.north_profile, "north-2"))
    )
    assert second["division"]["id"] == fleet.north["id"]
    history = await made(await fleet.d.get(f"/device/{device}/history"), 200)
    assert history["total"] >= 3


async def test_d_refuses_what_would_reach_past_its_divisions(
    app_client: AppClient, fleet: Fleet
) -> None:
    d = fleet.d
    assert_d_error(
        await d.post("/division", json={"name": "Mine"}), 403, "access_denied", "divisions"
    )
    # No profile named: the device would land in the default division.
    body = example_device_body(fleet.default_profile, "north-3")
    del body["device_profile_id"], body["division_id"], body["fields"]
    assert_d_error(await d.post("/device", json=body), 403, "access_denied", "default division")
    assert_d_error(
        await d.post("/device-profile", json=example_profile_body("Elsewhere")),
        403, "access_denied", "default division",
    )  # fmt: skip
    assert_d_error(await d.get("/audit-log"), 403, "access_denied", "audit log", "object_id")
    divisions = (await made(await app_client.d().get("/division"), 200))["total"]
    assert divisions == 2


async def test_f_sees_and_acts_only_inside_its_divisions(
    app_client: AppClient, fleet: Fleet
) -> None:
    f = fleet.f
    listed = await made(await f.get("/devices"), 200)
    assert [d["id"] for d in listed["data"]] == [f_id(fleet.north_device)]
    outside = f_id(fleet.outside)
    for response in (
        await f.get(f"/devices/{outside}"),
        await f.patch(f"/devices/{outside}", json={"reference_id": "mine"}),
        await f.delete(f"/devices/{outside}"),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "not_found", response.text
    starting = await f.get("/devices", params={"starting_after": outside})
    assert starting.status_code == 400, starting.text
    refused = await f.post("/devices", json={})
    assert refused.status_code == 403, refused.text
    assert "default division" in refused.json()["message"]
    inside = f_id(fleet.north_device)
    patched = await made(await f.patch(f"/devices/{inside}", json={"reference_id": "n1"}), 200)
    assert patched["reference_id"] == "n1"
    owner = await app_client.f()
    assert (await made(await owner.get(f"/devices/{outside}"), 200))["reference_id"] == ""
    assert len((await made(await owner.get("/devices"), 200))["data"]) == 2


async def test_a_limited_key_manages_only_keys_inside_its_limit(
    app_client: AppClient, fleet: Fleet
) -> None:
    d = fleet.d
    north = [fleet.north["id"]]
    assert_d_error(
        await d.post("/api-key", json={"name": "everything"}), 403, "access_denied", "divisions"
    )
    default_division = fleet.default_profile["division"]["id"]
    # A division outside its own does not exist for it: the account's default division
    # answers as an unknown id does, so a key cannot probe which ids are the account's.
    for outside in (default_division, str(uuid.uuid4())):
        wider = await d.post("/api-key", json={"name": "wider", "division_ids": [*north, outside]})
        assert wider.status_code == 400, wider.text
        assert wider.json() == {
            "errors": [
                {"code": "entity_not_found", "message": f"Division {outside} does not exist"}
            ]
        }, wider.text
    child = await made(await d.post("/api-key", json={"name": "child", "division_ids": north}))
    assert child["key"]["division_ids"] == north
    own = fleet.limited["key"]["id"]
    listed = await made(await d.get("/api-key"), 200)
    assert sorted(k["id"] for k in listed["records"]) == sorted([own, child["key"]["id"]])
    assert listed["total"] == 2
    owner_keys = await made(await app_client.d().get("/api-key"), 200)
    default_key = next(k for k in owner_keys["records"] if k["division_ids"] is None)
    assert_d_error(await d.get(f"/api-key/{default_key['id']}"), 400, "entity_not_found")
    assert_d_error(await d.put(f"/api-key/{default_key['id']}/revoke"), 400, "entity_not_found")
    assert_d_error(
        await d.post(f"/api-key/{default_key['id']}/rotate", json={"overlap_hours": 0}),
        400, "entity_not_found",
    )  # fmt: skip
    assert (await app_client.d().get("/device")).status_code == 200  # the owner's key works
    rotated = await made(
        await d.post(f"/api-key/{child['key']['id']}/rotate", json={"overlap_hours": 0})
    )
    assert rotated["key"]["division_ids"] == north  # a successor keeps the limit


async def test_bad_division_limits_are_400s_that_make_no_key(app_client: AppClient) -> None:
    owner = app_client.d()
    before = (await made(await owner.get("/api-key"), 200))["total"]
    other = str(uuid.uuid4())
    assert_d_error(
        await owner.post("/api-key", json={"name": "x", "division_ids": [other]}),
        400, "entity_not_found", other,
    )  # fmt: skip
    for bad in ([], ["not-a-uuid"], "one", [1]):
        response = await owner.post("/api-key", json={"name": "x", "division_ids": bad})
        assert response.status_code == 400, (bad, response.text)
    assert (await made(await owner.get("/api-key"), 200))["total"] == before


async def test_the_audit_log_of_one_object_in_reach(fleet: Fleet) -> None:
    """Entries carry no division: a limited key reads one object's at a time, and finds
    nothing for an object outside its divisions (as for another account's)."""
    inside = await made(
        await fleet.d.get("/audit-log", params={"object_id": fleet.north_device["id"]}), 200
    )
    assert [e["action"] for e in inside["records"]] == ["device.create"]
    for outside in (
        fleet.outside["id"],
        fleet.outside_cert["certificate_id"],
        fleet.default_profile["id"],
        fleet.default_profile["division"]["id"],
        fleet.limited["key"]["id"],
    ):
        found = await made(await fleet.d.get("/audit-log", params={"object_id": outside}), 200)
        assert found["records"] == [], outside
