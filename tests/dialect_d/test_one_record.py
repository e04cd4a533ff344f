"""One store, one device record: what dialect F makes, dialect D shows (default division
and profile, no fields) and the other way round; writes and deletes in one dialect are seen
in the other."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.dialect_d.helpers import (
    FLAGS,
    Account,
    all_devices,
    assert_errors,
    assert_no_such_device,
    get_device,
    make_device,
    make_profile,
    values_of,
)
from tests.dialect_f.helpers import assert_device, assert_error, bearer_client, list_all
from tests.support.server import login


@dataclass
class Both:
    """One account, spoken to in both dialects with its live and test keys."""

    d: Account
    f_live: httpx.Client
    f_test: httpx.Client


@pytest.fixture
def both(account: Account) -> Iterator[Both]:
    live = login(account.server, account.account_id, account.live_key)
    test = login(account.server, account.account_id, account.test_key)
    with (
        bearer_client(account.server, live) as f_live,
        bearer_client(account.server, test) as f_test,
    ):
        yield Both(account, f_live, f_test)


def f_id(d_id: str) -> str:
    return "dev_" + uuid.UUID(d_id).hex


def d_id(f_id: str) -> str:
    return str(uuid.UUID(hex=f_id.removeprefix("dev_")))


def f_get(client: httpx.Client, device_id: str) -> dict[str, Any]:
    response = client.get(f"/devices/{device_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_device_made_in_f_shows_in_d_with_the_defaults(both: Both) -> None:
    made = both.f_live.post("/devices", json={"reference_id": "meter-42"})
    assert made.status_code == 201, made.text
    f_device = made.json()
    device_id = d_id(f_device["id"])
    shown = get_device(both.d.live, device_id)
    assert shown["id"] == device_id
    assert shown["account_id"] == both.d.uuid
    assert shown["division"]["name"] == "Default"
    assert shown["device_profile"]["name"] == "Default"
    assert shown["fields"] == []
    assert shown["status"] == "ACTIVE"
    assert [shown[flag] for flag in FLAGS] == [True, True, True]
    assert shown["created"] == f_device["time_created"]
    assert shown["last_seen"] is None
    assert all_devices(both.d.live) == [shown]
    assert all_devices(both.d.test) == []
    # Test mode to test mode.
    in_test = both.f_test.post("/devices", json={}).json()
    assert [d["id"] for d in all_devices(both.d.test)] == [d_id(in_test["id"])]


def test_a_device_made_in_f_read_in_d_can_be_put_back(both: Both) -> None:
    """D shows it with device_identifier "": sent back so, it stays without one; it can
    be given one, but not an empty one once it has it."""
    made = both.f_live.post("/devices", json={"reference_id": "meter-43"}).json()
    device_id = d_id(made["id"])
    read = get_device(both.d.live, device_id)
    assert read["device_identifier"] == ""
    put = both.d.live.put(f"/device/{device_id}", json=read)
    assert put.status_code == 201, put.text
    assert put.json()["device_identifier"] == ""
    named = both.d.live.put(f"/device/{device_id}", json=dict(read, device_identifier="m-43"))
    assert named.status_code == 201 and named.json()["device_identifier"] == "m-43"
    emptied = both.d.live.put(f"/device/{device_id}", json=read)
    assert_errors(emptied, 400, "invalid_input", mentions=["device_identifier", "empty"])
    assert get_device(both.d.live, device_id)["device_identifier"] == "m-43"
    assert f_get(both.f_live, made["id"])["reference_id"] == "meter-43"


def test_a_device_made_in_d_shows_in_f(both: Both) -> None:
    profile = make_profile(both.d.live, "Sensor")
    made = make_device(both.d.live, "gw-1", profile, {"serial": "SN-1", "colour": "red"})
    device_id = f_id(made["id"])
    shown = f_get(both.f_live, device_id)
    assert_device(shown, account_id=both.d.account_id, live_mode=True, reference_id="")
    assert shown["id"] == device_id
    assert shown["time_created"] == made["created"]
    assert list_all(both.f_live) == [shown]
    assert list_all(both.f_test) == []
    assert_error(both.f_test.get(f"/devices/{device_id}"), 404, "invalid_request", "not_found")


def test_writes_in_one_dialect_leave_the_others_view_intact(both: Both) -> None:
    profile = make_profile(both.d.live, "Sensor")
    ids = {f["name"]: f["id"] for f in profile["fields"]}
    made = make_device(both.d.live, "gw-1", profile, {"serial": "SN-1", "colour": "red"})
    device_id = f_id(made["id"])
    patched = both.f_live.patch(f"/devices/{device_id}", json={"reference_id": "ref-1"})
    assert patched.status_code == 200, patched.text
    # F's PATCH changed only the reference: D's view keeps identifier, values and flags.
    after_patch = get_device(both.d.live, made["id"])
    assert {k: v for k, v in after_patch.items() if k != "updated"} == {
        k: v for k, v in made.items() if k != "updated"
    }
    # D's PUT (destructive to fields) is seen by F as the same device, reference kept.
    put = both.d.live.put(
        f"/device/{made['id']}",
        json={
            "device_identifier": "New Device",
            "fields": [{"id": ids["serial"], "value": "SN-2"}],
            "device_api_allow_write": False,
        },
    )
    assert put.status_code == 201, put.text
    seen_by_f = f_get(both.f_live, device_id)
    assert seen_by_f == patched.json()
    assert seen_by_f["reference_id"] == "ref-1"
    assert list_all(both.f_live, reference_id="ref-1") == [seen_by_f]
    # And F's next PATCH keeps what D's PUT set.
    again = both.f_live.patch(f"/devices/{device_id}", json={"reference_id": "ref-2"})
    assert again.status_code == 200, again.text
    final = get_device(both.d.live, made["id"])
    assert final["device_identifier"] == "New Device"
    assert values_of(final) == {"serial": "SN-2"}
    assert [final[flag] for flag in FLAGS] == [True, False, True]


def test_a_device_made_in_f_can_be_updated_in_d(both: Both) -> None:
    made = both.f_live.post("/devices", json={"reference_id": "from-f"}).json()
    device_id = d_id(made["id"])
    put = both.d.live.put(f"/device/{device_id}", json={"device_identifier": "named in D"})
    assert put.status_code == 201, put.text
    assert put.json()["device_identifier"] == "named in D"
    assert f_get(both.f_live, made["id"])["reference_id"] == "from-f"


def test_delete_in_d_hides_it_in_f(both: Both) -> None:
    made = make_device(both.d.live, "gw-1")
    assert both.d.live.delete(f"/device/{made['id']}").status_code == 200
    device_id = f_id(made["id"])
    assert_error(both.f_live.get(f"/devices/{device_id}"), 404, "invalid_request", "not_found")
    assert list_all(both.f_live) == []
    response = both.f_live.patch(f"/devices/{device_id}", json={"reference_id": "back"})
    assert_error(response, 404, "invalid_request", "not_found")
    assert_error(both.f_live.delete(f"/devices/{device_id}"), 404, "invalid_request", "not_found")


def test_delete_in_f_hides_it_in_d(both: Both) -> None:
    made = both.f_live.post("/devices", json={"reference_id": "gone-soon"}).json()
    deleted = both.f_live.delete(f"/devices/{made['id']}")
    assert deleted.status_code == 202, deleted.text
    device_id = d_id(made["id"])
    assert_no_such_device(both.d.live.get(f"/device/{device_id}"), device_id)
    assert_no_such_device(both.d.live.put(f"/device/{device_id}", json={}), device_id)
    assert all_devices(both.d.live) == []


def test_disable_in_d_does_not_hide_the_device_from_f(both: Both) -> None:
    made = make_device(both.d.live, "gw-1")
    assert both.d.live.put(f"/device/{made['id']}/disable").status_code == 200
    assert f_get(both.f_live, f_id(made["id"]))["id"] == f_id(made["id"])
