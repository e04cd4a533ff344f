"""A device's history and its state "as of" a moment, and the account's log, over dialect D
on both stores: handler tests, on the app in-process (`app_client`, a fresh account each)."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta
from typing import Any

from tests.dialect_d.helpers import assert_errors, assert_no_such_device
from tests.support.inprocess import AppClient

SHAPE = {
    "id", "account_id", "division", "device_identifier", "device_profile", "created",
    "updated", "status", "fields", "device_api_allow_read", "device_api_allow_write",
    "device_api_allow_renew_certificate", "last_seen", "reference_id", "live_mode", "version",
}  # fmt: skip


async def history(app: AppClient, device_id: str, **params: Any) -> dict[str, Any]:
    answer = await app.d().get(f"/device/{device_id}/history", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def as_of(app: AppClient, device_id: str, moment: str) -> dict[str, Any]:
    answer = await app.d().get(f"/device/{device_id}", params={"as_of": moment})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def shifted(moment: str, microseconds: int) -> str:
    return (datetime.fromisoformat(moment) + timedelta(microseconds=microseconds)).isoformat()


async def test_history_is_newest_first_in_pages_with_whole_records(app_client: AppClient) -> None:
    profile = await app_client.profile("History")
    device = await app_client.device(profile, "h-1")
    live = app_client.d()
    for n in range(3):
        body = {"device_identifier": f"h-1.{n}",
                "fields": [{"id": profile["fields"][0]["id"], "value": f"v{n}"}]}  # fmt: skip
        assert (await live.put(f"/device/{device['id']}", json=body)).status_code == 201
    assert (await live.put(f"/device/{device['id']}/disable")).status_code == 200
    whole = await history(app_client, device["id"])
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
    page = await history(app_client, device["id"], limit=2, offset=2)
    assert (page["limit"], page["offset"], page["total"]) == (2, 2, 5)
    assert [r["seq"] for r in page["records"]] == seqs[2:4]


async def test_as_of_answers_each_moment_of_the_history(app_client: AppClient) -> None:
    profile = await app_client.profile("AsOf")
    device = await app_client.device(profile, "a-1")
    live = app_client.d()
    body = {
        "device_identifier": "a-2",
        "fields": [{"id": profile["fields"][0]["id"], "value": "x"}],
    }
    assert (await live.put(f"/device/{device['id']}", json=body)).status_code == 201
    assert (await live.delete(f"/device/{device['id']}")).status_code == 200
    records = list(reversed((await history(app_client, device["id"]))["records"]))
    for record in records:
        then = await as_of(app_client, device["id"], record["time"])
        assert then == record["after"]
        assert set(then) == SHAPE
    created, updated, deleted = records
    # between two entries: the earlier one's state
    assert await as_of(app_client, device["id"], shifted(updated["time"], -1)) == created["after"]
    # a deleted device is still there as of before its deletion, and DELETED after it
    after = await as_of(app_client, device["id"], shifted(deleted["time"], 10**6))
    assert after["status"] == "DELETED"
    assert (await live.get(f"/device/{device['id']}")).status_code == 400  # gone from reads
    # before it existed
    before = shifted(created["time"], -1)
    assert_no_such_device(
        await live.get(f"/device/{device['id']}", params={"as_of": before}), device["id"]
    )


async def test_as_of_shows_what_only_dialect_f_shows(app_client: AppClient) -> None:
    made = await (await app_client.f()).post("/devices", json={"reference_id": "crm-1"})
    assert made.status_code == 201, made.text
    device_id = made.json()["id"].removeprefix("dev_")
    uuid_text = str(uuid.UUID(hex=device_id))
    (entry,) = (await history(app_client, uuid_text))["records"]
    then = await as_of(app_client, uuid_text, entry["time"])
    assert then["reference_id"] == "crm-1" and then["device_identifier"] == ""


async def test_history_and_as_of_are_the_accounts_and_the_modes(app_client: AppClient) -> None:
    device = await app_client.device(await app_client.profile("Scoped"), "s-1")
    test = app_client.d(live=False)
    # the test key does not see a live device
    assert_no_such_device(await test.get(f"/device/{device['id']}/history"), device["id"])
    entry = (await history(app_client, device["id"]))["records"][0]
    answer = await test.get(f"/device/{device['id']}", params={"as_of": entry["time"]})
    assert_no_such_device(answer, device["id"])
    unknown = "01a23801-0c83-77c0-a948-9917b0f078ac"
    assert_no_such_device(await app_client.d().get(f"/device/{unknown}/history"), unknown)


async def test_bad_as_of_and_history_parameters_are_refused(app_client: AppClient) -> None:
    device = await app_client.device(await app_client.profile("Bad"), "b-1")
    live = app_client.d()
    for bad in ("yesterday", "2026-12-02", "2026-12-02T10:00:00", "2026-13-02T10:00:00Z"):
        answer = await live.get(f"/device/{device['id']}", params={"as_of": bad})
        assert_errors(answer, 400, "invalid_input", mentions=["as_of"])
    answer = await live.get(f"/device/{device['id']}", params={"as_off": "2026-12-02T10:00:00Z"})
    assert_errors(answer, 400, "invalid_input", mentions=["as_off"])
    for params in ({"limit": "0"}, {"limit": "1001"}, {"offset": "-1"}, {"sort": "x"}):
        answer = await live.get(f"/device/{device['id']}/history", params=params)
        assert answer.status_code == 400, (params, answer.text)


async def test_the_account_log_filters_and_pages(app_client: AppClient) -> None:
    live = app_client.d()

    async def records(**params: Any) -> list[dict[str, Any]]:
        answer = await live.get("/audit-log", params=params)
        found: list[dict[str, Any]] = answer.json()["records"]
        return found

    profile = await app_client.profile("Log")
    device = await app_client.device(profile, "l-1")
    assert (await live.put(f"/device/{device['id']}/disable")).status_code == 200
    assert (await live.put(f"/device/{device['id']}/enable")).status_code == 200
    everything = await records(limit=1000)
    assert [e["seq"] for e in everything] == sorted(e["seq"] for e in everything)
    mine = await records(object_id=device["id"])
    assert [e["action"] for e in mine] == ["device.create", "device.disable", "device.enable"]
    only = await records(action="device.disable")
    assert [e["object_id"] for e in only] == [device["id"]]
    cli = await records(actor_kind="cli")
    assert {e["action"] for e in cli} == {"account.create", "api_key.create",
                                          "division.create", "device_profile.create"}  # fmt: skip
    first = (await live.get("/audit-log", params={"limit": 2})).json()
    assert len(first["records"]) == 2 and first["next_after_seq"] == first["records"][-1]["seq"]
    rest = (await live.get("/audit-log", params={"after_seq": first["next_after_seq"]})).json()
    assert [e["seq"] for e in first["records"] + rest["records"]] == [e["seq"] for e in everything]
    since = everything[-2]["time"]
    recent = await records(**{"from": since})
    assert [e["seq"] for e in recent] == [e["seq"] for e in everything if e["time"] >= since]
    for params in ({"actor_kind": "robot"}, {"object_id": "x"}, {"from": "today"}, {"x": "1"}):
        assert_errors(await live.get("/audit-log", params=params), 400, "invalid_input")


async def test_the_account_logs_text_filters_refuse_nul_and_overlong_values(
    app_client: AppClient,
) -> None:
    """A NUL (PostgreSQL cannot compare one) or more than 255 characters in actor_id or
    action: 400 invalid_input naming the parameter, on both stores (not a 500)."""
    live = app_client.d()
    for name in ("actor_id", "action"):
        for bad in ("a\x00b", "\x00", "x" * 256, "a\u202eb"):
            answer = await live.get("/audit-log", params={name: bad})
            assert_errors(answer, 400, "invalid_input", mentions=[name])
        empty = await live.get("/audit-log", params={name: "x" * 255})
        assert empty.json()["records"] == []
