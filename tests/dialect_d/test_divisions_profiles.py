"""Divisions and device profiles over HTTP with `x-api-key`: the fixed shapes scripts
depend on, and refusals that write nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.dialect_d.helpers import (
    FLAGS,
    UUID,
    Account,
    assert_errors,
    check_profile,
    make_division,
    make_profile,
)

NO_SUCH_UUID = "6b1e8a4c-0000-4000-8000-000000000000"


def divisions(client: httpx.Client) -> list[dict[str, Any]]:
    response = client.get("/division")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"limit", "offset", "total", "records"}, body
    assert body["total"] == len(body["records"]), body
    records: list[dict[str, Any]] = body["records"]
    return records


def profiles(client: httpx.Client) -> list[dict[str, Any]]:
    response = client.get("/device-profile")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"limit", "offset", "total", "records"}, body
    assert body["total"] == len(body["records"]), body
    return [check_profile(p) for p in body["records"]]


# --- divisions --------------------------------------------------------------------------------


def test_post_division_is_201_with_exactly_id_and_name(account: Account) -> None:
    response = account.live.post("/division", json={"name": "Mock Division 1"})
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"id", "name"}
    assert UUID.match(body["id"])
    assert body["name"] == "Mock Division 1"
    found = account.live.get(f"/division/{body['id']}")
    assert found.status_code == 200 and found.json() == body
    assert [d["name"] for d in divisions(account.live)] == ["Default", "Mock Division 1"]
    # Divisions belong to the account, whichever key asks.
    assert divisions(account.test) == divisions(account.live)


def test_duplicate_division_name_is_400_and_writes_nothing(account: Account) -> None:
    make_division(account.live, "North")
    before = divisions(account.live)
    response = account.test.post("/division", json={"name": "North"})
    assert_errors(response, 400, "invalid_input", mentions=["North", "already exists"])
    assert divisions(account.live) == before


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({}, ["name"]),
        ({"name": ""}, ["name"]),
        ({"name": "   "}, ["name", "empty"]),
        ({"name": "x" * 201}, ["name", "200"]),
        ({"name": "a\nb"}, ["name", "control"]),
        ({"name": None}, ["name"]),
        ({"name": 7}, ["name"]),
        ({"name": "ok", "id": "6b1e8a4c-0000-4000-8000-000000000000"}, ["id"]),
    ],
    ids=["missing", "empty", "blank", "too long", "newline", "null", "number", "id given"],
)
def test_bad_division_is_400_and_writes_nothing(
    shared: Account, body: dict[str, Any], mentions: list[str]
) -> None:
    response = shared.live.post("/division", json=body)
    assert_errors(response, 400, "invalid_input", mentions=mentions)
    assert [d["name"] for d in divisions(shared.live)] == ["Default"]


def test_unknown_or_foreign_division_is_entity_not_found(account: Account, other: Account) -> None:
    theirs = make_division(other.live, "Theirs")
    for division_id in (theirs["id"], NO_SUCH_UUID):
        assert_errors(account.live.get(f"/division/{division_id}"), 400, "entity_not_found")
    assert_errors(account.live.get("/division/not-a-uuid"), 400, "invalid_input", mentions=["UUID"])
    assert theirs not in divisions(account.live)


# --- device profiles ---------------------------------------------------------------------------


def test_post_device_profile_fixed_shape(account: Account) -> None:
    division = make_division(account.live, "Mock Division 1")
    request = {
        "name": "Device Profile",
        "division_id": division["id"],
        "fields": [
            {"name": "Mandatory Field", "mandatory": True},
            {"name": "Optional Field", "mandatory": False},
            {"name": "Another", "mandatory": True},
        ],
        "device_api_allow_read": True,
        "device_api_allow_write": False,
        "device_api_allow_renew_certificate": False,
    }
    response = account.live.post("/device-profile", json=request)
    assert response.status_code == 201, response.text
    body = check_profile(response.json())
    assert body["name"] == "Device Profile"
    assert body["division"] == division
    assert [(f["name"], f["mandatory"]) for f in body["fields"]] == [
        ("Mandatory Field", True),
        ("Optional Field", False),
        ("Another", True),
    ]
    assert len({f["id"] for f in body["fields"]}) == 3
    assert [body[flag] for flag in FLAGS] == [True, False, False]
    found = account.live.get(f"/device-profile/{body['id']}")
    assert found.status_code == 200 and found.json() == body
    assert profiles(account.test)[1] == body


def test_device_profile_defaults(account: Account) -> None:
    response = account.live.post("/device-profile", json={"name": "Bare"})
    assert response.status_code == 201, response.text
    body = check_profile(response.json())
    assert body["division"]["name"] == "Default"
    assert body["fields"] == []
    assert [body[flag] for flag in FLAGS] == [True, True, True]
    field = make_profile(account.live, "One field", fields=[("f", False)])["fields"][0]
    assert field["mandatory"] is False
    default = profiles(account.live)[0]
    assert default["name"] == "Default" and default["fields"] == []
    assert [default[flag] for flag in FLAGS] == [True, True, True]


@pytest.mark.parametrize(
    ("body", "status", "code", "mentions"),
    [
        ({"name": "P", "division_id": NO_SUCH_UUID}, 400, "entity_not_found", ["division"]),
        ({"name": "P", "division_id": "nope"}, 400, "invalid_input", ["division_id", "UUID"]),
        (
            {"name": "P", "fields": [{"name": "a"}, {"name": "b"}, {"name": "a"}]},
            400,
            "invalid_input",
            ["'a'"],
        ),
        (
            {"name": "P", "fields": [{"name": f"f{i}"} for i in range(101)]},
            400,
            "invalid_input",
            ["100"],
        ),
        ({"name": "P", "fields": [{"mandatory": True}]}, 400, "invalid_input", ["name"]),
        ({"name": "P", "fields": [{"name": ""}]}, 400, "invalid_input", ["name"]),
        ({"name": "P", "fields": [{"name": "a\tb"}]}, 400, "invalid_input", ["fields[0].name"]),
        (
            {"name": "P", "fields": [{"name": "a", "mandatory": "yes"}]},
            400,
            "invalid_input",
            ["mandatory"],
        ),
        (
            {"name": "P", "fields": [{"name": "a", "id": NO_SUCH_UUID}]},
            400,
            "invalid_input",
            ["id"],
        ),
        (
            {"name": "P", "device_api_allow_read": 1},
            400,
            "invalid_input",
            ["device_api_allow_read"],
        ),
        ({"name": "P", "fields": {}}, 400, "invalid_input", ["fields"]),
        ({"name": "Default"}, 400, "invalid_input", ["Default", "already exists"]),
        ({"fields": []}, 400, "invalid_input", ["name"]),
    ],
    ids=[
        "unknown division",
        "division not a uuid",
        "duplicate field names",
        "101 fields",
        "field without name",
        "empty field name",
        "control char in field name",
        "mandatory not bool",
        "field id given",
        "flag not bool",
        "fields not a list",
        "taken name",
        "no name",
    ],
)
def test_bad_device_profile_is_refused_and_writes_nothing(
    shared: Account, body: dict[str, Any], status: int, code: str, mentions: list[str]
) -> None:
    response = shared.live.post("/device-profile", json=body)
    assert_errors(response, status, code, mentions=mentions)
    assert [p["name"] for p in profiles(shared.live)] == ["Default"]


def test_a_hundred_fields_are_accepted(account: Account) -> None:
    fields = [(f"field {i:03}", i % 3 == 0) for i in range(100)]
    profile = make_profile(account.live, "Wide", fields=fields)
    assert [(f["name"], f["mandatory"]) for f in profile["fields"]] == fields


def test_other_accounts_profile_and_division_are_entity_not_found(
    account: Account, other: Account
) -> None:
    theirs = make_profile(other.live, "Theirs")
    assert_errors(account.live.get(f"/device-profile/{theirs['id']}"), 400, "entity_not_found")
    assert_errors(account.live.get(f"/device-profile/{NO_SUCH_UUID}"), 400, "entity_not_found")
    response = account.live.post(
        "/device-profile", json={"name": "Mine", "division_id": theirs["division"]["id"]}
    )
    assert_errors(response, 400, "entity_not_found", mentions=["division"])
    assert [p["name"] for p in profiles(account.live)] == ["Default"]
    assert [p["name"] for p in profiles(other.live)] == ["Default", "Theirs"]
