"""DigiCert's disable, enable and archive ("delete") pages, and the restore they name."""

from __future__ import annotations

from tests.conformance.conftest import Vendors
from tests.dialect_d.helpers import DEVICE_KEYS, assert_errors, assert_no_such_device, parse_time

NO_SUCH = "00000000-0000-4000-8000-000000000000"


def test_disable_answers_the_device_disabled(vendors: Vendors) -> None:
    device = vendors.device(vendors.profile(), "to-disable")
    answer = vendors.d.live.put(
        f"/device/{device['id']}/disable", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == DEVICE_KEYS and body["id"] == device["id"]
    assert body["status"] == "DISABLED"
    assert parse_time(body["updated"]) >= parse_time(device["updated"])
    assert vendors.d.live.get(f"/device/{device['id']}").json()["status"] == "DISABLED"
    assert_no_such_device(vendors.d.live.put(f"/device/{NO_SUCH}/disable"), NO_SUCH)


def test_enable_answers_the_device_active(vendors: Vendors) -> None:
    device = vendors.device(vendors.profile(), "to-enable")
    assert vendors.d.live.put(f"/device/{device['id']}/disable").status_code == 200
    answer = vendors.d.live.put(f"/device/{device['id']}/enable")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "ACTIVE" and set(answer.json()) == DEVICE_KEYS
    assert_no_such_device(vendors.d.live.put(f"/device/{NO_SUCH}/enable"), NO_SUCH)


def test_delete_archives_the_device(vendors: Vendors) -> None:
    profile = vendors.profile()
    device = vendors.device(profile, "New Device")
    answer = vendors.d.live.delete(f"/device/{device['id']}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == DEVICE_KEYS and body["id"] == device["id"]
    assert body["status"] == "DELETED"
    # hidden: the seed's answer for an unknown device, no list shows it
    assert_no_such_device(vendors.d.live.get(f"/device/{device['id']}"), device["id"])
    assert vendors.d.live.get("/device").json()["total"] == 0
    # its identifier is free again
    vendors.device(profile, "New Device")
    assert_no_such_device(vendors.d.live.delete(f"/device/{NO_SUCH}"), NO_SUCH)


def test_restore_brings_the_device_back(vendors: Vendors) -> None:
    profile = vendors.profile()
    device = vendors.device(profile, "restored")
    assert vendors.d.live.delete(f"/device/{device['id']}").status_code == 200
    answer = vendors.d.live.put(f"/device/{device['id']}/restore")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "ACTIVE" and answer.json()["id"] == device["id"]
    assert vendors.d.live.get(f"/device/{device['id']}").json()["status"] == "ACTIVE"
    # archived again, and its identifier taken meanwhile: the restore names the clash
    assert vendors.d.live.delete(f"/device/{device['id']}").status_code == 200
    vendors.device(profile, "restored")
    clash = vendors.d.live.put(f"/device/{device['id']}/restore")
    assert_errors(clash, 400, "invalid_input", mentions=["restored"])
    assert_no_such_device(vendors.d.live.get(f"/device/{device['id']}"), device["id"])
