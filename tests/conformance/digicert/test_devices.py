"""DigiCert's device pages (API key), each documented example sent as written with devreg's
ids and host: the status, the field names, nesting and types, the documented codes."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from tests.conformance.conftest import Vendors
from tests.dialect_d.helpers import (
    DEVICE_KEYS,
    assert_errors,
    assert_no_such_device,
    check_device,
    parse_time,
)

NO_SUCH = "00000000-0000-4000-8000-000000000000"


def test_a_missing_or_unknown_api_key_is_401_invalid_api_key(vendors: Vendors) -> None:
    assert_errors(vendors.d.anon.get("/device"), 401, "invalid_api_key")
    with httpx.Client(base_url=str(vendors.d.live.base_url)) as client:
        wrong = client.get("/device", headers={"x-api-key": "not-a-key"})
    assert_errors(wrong, 401, "invalid_api_key")


def test_every_answer_under_iot_is_in_digicerts_envelope(vendors: Vendors) -> None:
    base = vendors.server.base_url
    key = {"x-api-key": vendors.d.live_key}
    # an unknown path, with and without a key: DigiCert's generic 404
    for headers in (key, {}):
        unknown = httpx.get(base + "/iot/api/v2/no-such-thing", headers=headers)
        assert_errors(unknown, 404, "resource_not_found")
    # a known path with a method it does not take
    wrong_method = httpx.patch(base + "/iot/api/v2/device", headers=key)
    assert wrong_method.status_code == 405, wrong_method.text
    assert set(wrong_method.json()) == {"errors"}, wrong_method.text
    assert "GET" in wrong_method.headers["allow"]


def test_v1_paths_answer_not_found_in_digicerts_envelope(vendors: Vendors) -> None:
    key = {"x-api-key": vendors.d.live_key}
    base = vendors.server.base_url + "/iot/api/v1"
    for method, path in (
        ("POST", "/device"),
        ("GET", "/device/New%20Device?division_id=" + NO_SUCH),
        ("POST", "/certificate"),
        ("GET", "/certificate"),
        ("PUT", f"/certificate/{NO_SUCH}/renew"),
        ("PUT", f"/certificate/{NO_SUCH}/revoke"),
    ):
        answer = httpx.request(method, base + path, headers=key, json={})
        assert_errors(answer, 404, "resource_not_found")


def test_create_device_as_documented(vendors: Vendors) -> None:
    profile = vendors.profile()
    mandatory, optional = (field["id"] for field in profile["fields"])
    made = vendors.d.live.post(
        "/device",
        headers={"content-type": "application/json"},
        json={
            "division_id": profile["division"]["id"],
            "device_identifier": "New Device",
            "device_profile_id": profile["id"],
            "fields": [{"id": mandatory, "value": "abc"}, {"id": optional, "value": "def"}],
        },
    )
    assert made.status_code == 201, made.text
    device = check_device(made.json())
    assert device["created"] == device["updated"] and device["status"] == "ACTIVE"
    assert device["device_identifier"] == "New Device"
    assert device["division"]["id"] == profile["division"]["id"]
    assert device["device_profile"] == {"id": profile["id"], "name": "Device Profile"}
    assert {f["name"]: (f["value"], f["mandatory"]) for f in device["fields"]} == {
        "Mandatory Field": ("abc", True),
        "Optional Field": ("def", False),
    }
    assert device["account_id"] == vendors.d.uuid


def test_a_duplicate_identifier_is_refused_in_digicerts_words(vendors: Vendors) -> None:
    profile = vendors.profile()
    vendors.device(profile, "New Device")
    again = vendors.d.live.post(
        "/device",
        json={
            "division_id": profile["division"]["id"],
            "device_identifier": "New Device",
            "device_profile_id": profile["id"],
            "fields": [{"id": profile["fields"][0]["id"], "value": "abc"}],
        },
    )
    assert_errors(again, 400, "invalid_input")
    division = profile["division"]["id"]
    assert again.json()["errors"][0]["message"] == (
        f"Device with division {division} and identifier New Device already exists"
    )


def test_device_list_envelope_and_defaults(vendors: Vendors) -> None:
    profile = vendors.profile()
    made = [vendors.device(profile, f"dev-{n:02}") for n in range(23)]
    first = vendors.d.live.get("/device")
    assert first.status_code == 200, first.text
    page = first.json()
    assert set(page) == {"limit", "offset", "total", "records"}
    assert (page["limit"], page["offset"], page["total"]) == (20, 0, 23)
    assert len(page["records"]) == 20
    for record in page["records"]:
        assert set(record) == DEVICE_KEYS
    # the page's own example: limit 1, offset 11
    one = vendors.d.live.get("/device", params={"limit": 1, "offset": 11}).json()
    assert (one["limit"], one["offset"], one["total"], len(one["records"])) == (1, 11, 23, 1)
    every = vendors.d.live.get("/device", params={"limit": 100}).json()["records"]
    assert sorted(d["id"] for d in every) == sorted(d["id"] for d in made)


def test_openwifi_lookup_by_identifier_and_updated_from(vendors: Vendors) -> None:
    """TIP's OpenWiFi scripts: `?limit=1&device_identifier=<MAC>&updated_from=<today>`,
    then `.records[0].id`."""
    profile = vendors.profile()
    device = vendors.device(profile, "04:f8:f8:fc:35:01")
    vendors.device(profile, "04:f8:f8:fc:35:02")
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    found = vendors.d.live.get(
        "/device",
        params={"limit": 1, "device_identifier": "04:f8:f8:fc:35:01", "updated_from": today},
    )
    assert found.status_code == 200, found.text
    assert found.json()["records"][0]["id"] == device["id"]
    assert found.json()["total"] == 1


def test_date_filters_take_days_and_the_upated_to_spelling(vendors: Vendors) -> None:
    profile = vendors.profile()
    device = vendors.device(profile, "dated")
    day = parse_time(device["created"]).strftime("%Y-%m-%d")
    for name in ("created_from", "created_to", "updated_from", "updated_to", "upated_to"):
        page = vendors.d.live.get("/device", params={name: day})
        assert page.status_code == 200, (name, page.text)
        assert [r["id"] for r in page.json()["records"]] == [device["id"]], name
    # the day before: nothing was updated by then, whichever spelling says so
    for name in ("updated_to", "upated_to"):
        page = vendors.d.live.get("/device", params={name: "2020-04-21"})
        assert page.json()["total"] == 0, name
    bad = vendors.d.live.get("/device", params={"upated_to": "22/04/2020"})
    assert_errors(bad, 400, "invalid_input", mentions=["upated_to"])
    # both spellings: the same bound is fine, two bounds are a mistake worth naming
    both = vendors.d.live.get("/device", params={"updated_to": day, "upated_to": day})
    assert both.status_code == 200 and both.json()["total"] == 1, both.text
    differ = vendors.d.live.get("/device", params={"updated_to": day, "upated_to": "2020-04-21"})
    assert_errors(differ, 400, "invalid_input", mentions=["upated_to", "updated_to"])


def test_get_device_details(vendors: Vendors) -> None:
    profile = vendors.profile()
    device = vendors.device(profile, "detailed")
    got = vendors.d.live.get(f"/device/{device['id']}")
    assert got.status_code == 200, got.text
    assert check_device(got.json()) == device
    assert_no_such_device(vendors.d.live.get(f"/device/{NO_SUCH}"), NO_SUCH)


def test_update_by_id_sets_fields_and_flags(vendors: Vendors) -> None:
    profile = vendors.profile()
    device = vendors.device(profile, "Old Device")
    mandatory = profile["fields"][0]["id"]
    put = vendors.d.live.put(
        f"/device/{device['id']}",
        json={
            "device_identifier": "Renamed Device",
            "fields": [{"id": mandatory, "value": "updated mandatory value"}],
            "device_api_allow_read": True,
            "device_api_allow_write": True,
        },
    )
    assert put.status_code == 201, put.text
    updated = check_device(put.json())
    assert updated["id"] == device["id"] and updated["device_identifier"] == "Renamed Device"
    # fields is destructive: the optional value that was not sent is gone
    assert [(f["name"], f["value"]) for f in updated["fields"]] == [
        ("Mandatory Field", "updated mandatory value")
    ]
    assert updated["device_api_allow_read"] and updated["device_api_allow_write"]
    # a flag not sent keeps its value
    renew = "device_api_allow_renew_certificate"
    assert updated[renew] == device[renew]
    assert parse_time(updated["updated"]) >= parse_time(device["updated"])
    assert check_device(vendors.d.live.get(f"/device/{device['id']}").json()) == updated


def test_a_device_read_back_and_put_is_accepted(vendors: Vendors) -> None:
    """A client GETs the device, changes one value and PUTs the same object back."""
    profile = vendors.profile()
    device = vendors.device(profile, "read-back")
    read = vendors.d.live.get(f"/device/{device['id']}").json()
    read["fields"][1]["value"] = "changed"
    put = vendors.d.live.put(f"/device/{device['id']}", json=read)
    assert put.status_code == 201, put.text
    assert [f["value"] for f in put.json()["fields"]] == ["m0", "changed"]
    # a read-only key that disagrees with the record, and a key no page documents
    wrong_name = dict(read, fields=[dict(read["fields"][0], name="Other Field")])
    refused = vendors.d.live.put(f"/device/{device['id']}", json=wrong_name)
    assert_errors(refused, 400, "invalid_input", mentions=["name"])
    typo = dict(read, device_identifer="typo")
    assert_errors(
        vendors.d.live.put(f"/device/{device['id']}", json=typo),
        400, "invalid_input", mentions=["device_identifer"],
    )  # fmt: skip
    after = vendors.d.live.get(f"/device/{device['id']}").json()
    assert [f["value"] for f in after["fields"]] == ["m0", "changed"]
