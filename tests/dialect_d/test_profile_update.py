"""`PUT /iot/api/v2/device-profile/{id}` and what it does to the profile's devices."""

from __future__ import annotations

from typing import Any

import httpx

from tests.dialect_d.helpers import Account


def make_profile(client: httpx.Client, name: str) -> dict[str, Any]:
    made = client.post(
        "/device-profile",
        json={
            "name": name,
            "fields": [
                {"name": "serial", "mandatory": True},
                {"name": "colour", "mandatory": False},
            ],
        },
    )
    assert made.status_code == 201, made.text
    profile: dict[str, Any] = made.json()
    return profile


def make_device(client: httpx.Client, profile: dict[str, Any], name: str) -> dict[str, Any]:
    serial, colour = (f["id"] for f in profile["fields"])
    made = client.post(
        "/device",
        json={
            "device_identifier": name,
            "device_profile_id": profile["id"],
            "fields": [{"id": serial, "value": "S1"}, {"id": colour, "value": "red"}],
        },
    )
    assert made.status_code == 201, made.text
    device: dict[str, Any] = made.json()
    return device


def test_fields_renamed_removed_and_added(account: Account) -> None:
    client = account.live
    profile = make_profile(client, "sensor")
    device = make_device(client, profile, "d1")
    serial, colour = (f["id"] for f in profile["fields"])
    updated = client.put(
        f"/device-profile/{profile['id']}",
        json={
            "fields": [
                {"id": serial, "name": "serial number", "mandatory": True},
                {"name": "site", "mandatory": True},
            ],
            "device_api_allow_write": False,
        },
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert [(f["name"], f["mandatory"]) for f in body["fields"]] == [
        ("serial number", True),
        ("site", True),
    ]
    assert body["fields"][0]["id"] == serial
    assert body["device_api_allow_write"] is False
    assert body["device_api_allow_read"] is True  # not given: unchanged
    # The existing device: the removed field's value is gone, the kept one renamed,
    # its own flags unchanged, and the new mandatory field not forced on it yet.
    stored = client.get(f"/device/{device['id']}").json()
    assert [(f["id"], f["name"], f["value"]) for f in stored["fields"]] == [
        (serial, "serial number", "S1")
    ]
    assert stored["device_api_allow_write"] is True
    assert colour not in {f["id"] for f in stored["fields"]}
    # ... but its next update must give it.
    site = body["fields"][1]["id"]
    refused = client.put(
        f"/device/{device['id']}", json={"fields": [{"id": serial, "value": "S2"}]}
    )
    assert refused.status_code == 400
    assert "site" in refused.json()["errors"][0]["message"]
    accepted = client.put(
        f"/device/{device['id']}",
        json={"fields": [{"id": serial, "value": "S2"}, {"id": site, "value": "Leeds"}]},
    )
    assert accepted.status_code == 201, accepted.text
    # New devices take the new default flags.
    new = client.post(
        "/device",
        json={
            "device_identifier": "d2",
            "device_profile_id": profile["id"],
            "fields": [{"id": serial, "value": "S3"}, {"id": site, "value": "York"}],
        },
    )
    assert new.status_code == 201, new.text
    assert new.json()["device_api_allow_write"] is False


def test_two_fields_may_swap_names(account: Account) -> None:
    client = account.live
    profile = make_profile(client, "swapper")
    serial, colour = (f["id"] for f in profile["fields"])
    swapped = client.put(
        f"/device-profile/{profile['id']}",
        json={
            "fields": [
                {"id": serial, "name": "colour", "mandatory": True},
                {"id": colour, "name": "serial", "mandatory": False},
            ]
        },
    )
    assert swapped.status_code == 200, swapped.text
    assert [(f["id"], f["name"]) for f in swapped.json()["fields"]] == [
        (serial, "colour"),
        (colour, "serial"),
    ]


def test_bad_updates_are_refused_and_change_nothing(account: Account, other: Account) -> None:
    client = account.live
    profile = make_profile(client, "strict")
    foreign = make_profile(other.live, "theirs")
    serial, _ = (f["id"] for f in profile["fields"])
    cases = [
        {"fields": [{"id": foreign["fields"][0]["id"], "name": "x"}]},  # not this profile's
        {"fields": [{"id": serial, "name": "a"}, {"id": serial, "name": "b"}]},
        {"fields": [{"name": "same"}, {"name": "same"}]},
        {"fields": [{"id": "not-a-uuid", "name": "x"}]},
        {"name": ""},
        {"unknown": 1},
        {"device_api_allow_read": "yes"},
    ]
    for body in cases:
        answer = client.put(f"/device-profile/{profile['id']}", json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["errors"][0]["code"] == "invalid_input", body
    assert client.get(f"/device-profile/{profile['id']}").json() == profile
    # Another account's profile is not found.
    answer = other.live.put(f"/device-profile/{profile['id']}", json={"name": "mine"})
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "entity_not_found"


def test_only_a_live_key_changes_a_profile_and_devices_losing_a_value_are_written(
    account: Account,
) -> None:
    """Profiles are shared by live and test devices: a test key must not be able to delete
    live devices' values through one."""
    profile = make_profile(account.live, "shared")
    device = make_device(account.live, profile, "live-1")
    serial, _colour = (f["id"] for f in profile["fields"])
    refused = account.test.put(f"/device-profile/{profile['id']}", json={"fields": []})
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["code"] == "access_denied"
    assert account.live.get(f"/device/{device['id']}").json() == device
    # With a live key the removed field's value goes, and the device counts as written.
    done = account.live.put(
        f"/device-profile/{profile['id']}",
        json={"fields": [{"id": serial, "name": "serial", "mandatory": True}]},
    )
    assert done.status_code == 200, done.text
    after = account.live.get(f"/device/{device['id']}").json()
    assert [f["name"] for f in after["fields"]] == ["serial"]
    assert after["updated"] >= device["updated"]
