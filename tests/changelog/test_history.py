"""A device's history and its state "as of" a moment, over dialect D, on both stores."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta
from typing import Any

from tests.conformance.conftest import Vendors
from tests.dialect_d.helpers import assert_errors, assert_no_such_device

SHAPE = {
    "id", "account_id", "division", "device_identifier", "device_profile", "created",
    "updated", "status", "fields", "device_api_allow_read", "device_api_allow_write",
    "device_api_allow_renew_certificate", "last_seen", "reference_id", "live_mode", "version",
}  # fmt: skip


def history(world: Vendors, device_id: str, **params: Any) -> dict[str, Any]:
    answer = world.d.live.get(f"/device/{device_id}/history", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def as_of(world: Vendors, device_id: str, moment: str) -> dict[str, Any]:
    answer = world.d.live.get(f"/device/{device_id}", params={"as_of": moment})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def shifted(moment: str, microseconds: int) -> str:
    return (datetime.fromisoformat(moment) + timedelta(microseconds=microseconds)).isoformat()


def test_history_is_newest_first_in_pages_with_whole_records(world: Vendors) -> None:
    profile = world.profile("History")
    device = world.device(profile, "h-1")
    live = world.d.live
    for n in range(3):
        body = {"device_identifier": f"h-1.{n}",
                "fields": [{"id": profile["fields"][0]["id"], "value": f"v{n}"}]}  # fmt: skip
        assert live.put(f"/device/{device['id']}", json=body).status_code == 201
    assert live.put(f"/device/{device['id']}/disable").status_code == 200
    whole = history(world, device["id"])
    assert whole["total"] == 5 and whole["limit"] == 20 and whole["offset"] == 0
    actions = [r["action"] for r in whole["records"]]
    assert actions == ["device.disable", *["device.update"] * 3, "device.create"]
    seqs = [r["seq"] for r in whole["records"]]
    assert seqs == sorted(seqs, reverse=True)
    newest = whole["records"][0]
    assert set(newest) == {"seq", "time", "actor", "request_id", "action", "before", "after"}
    assert set(newest["after"]) == SHAPE and set(newest["before"]) == SHAPE
    assert newest["before"]["status"] == "ACTIVE" and newest["after"]["status"] == "DISABLED"
    assert newest["after"]["fields"] == [
        {"id": profile["fields"][0]["id"], "name": "Mandatory Field", "value": "v2",
         "mandatory": True}
    ]  # fmt: skip
    assert newest["after"]["live_mode"] is True and newest["after"]["reference_id"] is None
    # each update's before is the previous entry's after
    records = whole["records"]
    for newer, older in itertools.pairwise(records):
        assert newer["before"] == older["after"]
    page = history(world, device["id"], limit=2, offset=2)
    assert (page["limit"], page["offset"], page["total"]) == (2, 2, 5)
    assert [r["seq"] for r in page["records"]] == seqs[2:4]


def test_as_of_answers_each_moment_of_the_history(world: Vendors) -> None:
    profile = world.profile("AsOf")
    device = world.device(profile, "a-1")
    live = world.d.live
    body = {
        "device_identifier": "a-2",
        "fields": [{"id": profile["fields"][0]["id"], "value": "x"}],
    }
    assert live.put(f"/device/{device['id']}", json=body).status_code == 201
    assert live.delete(f"/device/{device['id']}").status_code == 200
    records = list(reversed(history(world, device["id"])["records"]))
    for record in records:
        then = as_of(world, device["id"], record["time"])
        assert then == record["after"]
        assert set(then) == SHAPE
    created, updated, deleted = records
    # between two entries: the earlier one's state
    assert as_of(world, device["id"], shifted(updated["time"], -1)) == created["after"]
    # a deleted device is still there as of before its deletion, and DELETED after it
    assert as_of(world, device["id"], shifted(deleted["time"], 10**6))["status"] == "DELETED"
    assert live.get(f"/device/{device['id']}").status_code == 400  # gone from plain reads
    # before it existed
    assert_no_such_device(
        live.get(f"/device/{device['id']}", params={"as_of": shifted(created["time"], -1)}),
        device["id"],
    )


def test_as_of_shows_what_only_dialect_f_shows(world: Vendors) -> None:
    made = world.f_live.post("/devices", json={"reference_id": "crm-1"})
    assert made.status_code == 201, made.text
    device_id = made.json()["id"].removeprefix("dev_")
    uuid_text = str(uuid.UUID(hex=device_id))
    (entry,) = history(world, uuid_text)["records"]
    then = as_of(world, uuid_text, entry["time"])
    assert then["reference_id"] == "crm-1" and then["device_identifier"] == ""


def test_history_and_as_of_are_the_accounts_and_the_modes(world: Vendors) -> None:
    device = world.device(world.profile("Scoped"), "s-1")
    # the test key does not see a live device
    assert_no_such_device(world.d.test.get(f"/device/{device['id']}/history"), device["id"])
    entry = history(world, device["id"])["records"][0]
    answer = world.d.test.get(f"/device/{device['id']}", params={"as_of": entry["time"]})
    assert_no_such_device(answer, device["id"])
    unknown = "01a23801-0c83-77c0-a948-9917b0f078ac"
    assert_no_such_device(world.d.live.get(f"/device/{unknown}/history"), unknown)


def test_bad_as_of_and_history_parameters_are_refused(world: Vendors) -> None:
    device = world.device(world.profile("Bad"), "b-1")
    live = world.d.live
    for bad in ("yesterday", "2026-12-02", "2026-12-02T10:00:00", "2026-13-02T10:00:00Z"):
        answer = live.get(f"/device/{device['id']}", params={"as_of": bad})
        assert_errors(answer, 400, "invalid_input", mentions=["as_of"])
    answer = live.get(f"/device/{device['id']}", params={"as_off": "2026-12-02T10:00:00Z"})
    assert_errors(answer, 400, "invalid_input", mentions=["as_off"])
    for params in ({"limit": "0"}, {"limit": "1001"}, {"offset": "-1"}, {"sort": "x"}):
        answer = live.get(f"/device/{device['id']}/history", params=params)
        assert answer.status_code == 400, (params, answer.text)


def test_the_account_log_filters_and_pages(world: Vendors) -> None:
    live = world.d.live
    profile = world.profile("Log")
    device = world.device(profile, "l-1")
    assert live.put(f"/device/{device['id']}/disable").status_code == 200
    assert live.put(f"/device/{device['id']}/enable").status_code == 200
    everything = live.get("/audit-log", params={"limit": 1000}).json()["records"]
    assert [e["seq"] for e in everything] == sorted(e["seq"] for e in everything)
    mine = live.get("/audit-log", params={"object_id": device["id"]}).json()["records"]
    assert [e["action"] for e in mine] == ["device.create", "device.disable", "device.enable"]
    only = live.get("/audit-log", params={"action": "device.disable"}).json()["records"]
    assert [e["object_id"] for e in only] == [device["id"]]
    cli = live.get("/audit-log", params={"actor_kind": "cli"}).json()["records"]
    assert {e["action"] for e in cli} == {"account.create", "api_key.create",
                                          "division.create", "device_profile.create"}  # fmt: skip
    first = live.get("/audit-log", params={"limit": 2}).json()
    assert len(first["records"]) == 2 and first["next_after_seq"] == first["records"][-1]["seq"]
    rest = live.get("/audit-log", params={"after_seq": first["next_after_seq"]}).json()
    assert [e["seq"] for e in first["records"] + rest["records"]] == [e["seq"] for e in everything]
    since = everything[-2]["time"]
    recent = live.get("/audit-log", params={"from": since}).json()["records"]
    assert [e["seq"] for e in recent] == [e["seq"] for e in everything if e["time"] >= since]
    for params in ({"actor_kind": "robot"}, {"object_id": "x"}, {"from": "today"}, {"x": "1"}):
        assert_errors(live.get("/audit-log", params=params), 400, "invalid_input")


def test_the_account_logs_text_filters_refuse_nul_and_overlong_values(world: Vendors) -> None:
    """A NUL (PostgreSQL cannot compare one) or more than 255 characters in actor_id or
    action: 400 invalid_input naming the parameter, on both stores (not a 500)."""
    live = world.d.live
    for name in ("actor_id", "action"):
        for bad in ("a\x00b", "\x00", "x" * 256, "a\u202eb"):
            answer = live.get("/audit-log", params={name: bad})
            assert_errors(answer, 400, "invalid_input", mentions=[name])
        assert live.get("/audit-log", params={name: "x" * 255}).json()["records"] == []
