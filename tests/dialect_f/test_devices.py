"""Dialect F end to end, as a Flatpeak client sees it: login, then the device lifecycle over
real HTTP against `devreg serve` on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.dialect_f.helpers import (
    ACCOUNT_ID,
    API_VERSION,
    DEVICE_ID,
    Tenant,
    assert_device,
    assert_error,
    bearer_client,
    list_all,
    list_page,
    new_tenant,
    parse_time,
)
from tests.support.server import RunningServer

DUPLICATE = {
    "object": "error",
    "type": "conflict",
    "code": "duplicate_reference",
    "message": "Reference ID already exists",
}


def create(client: httpx.Client, reference_id: str | None = None) -> dict[str, Any]:
    body = {} if reference_id is None else {"reference_id": reference_id}
    response = client.post("/devices", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def get(client: httpx.Client, device_id: str) -> dict[str, Any]:
    response = client.get(f"/devices/{device_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def assert_duplicate(response: httpx.Response, context: str | None = None) -> None:
    """Seed 000's 409, from a live caller; `context` names the endpoint when given."""
    assert response.status_code == 409, response.text
    body = response.json()
    assert body.pop("live_mode") is True, body
    where = body.pop("context")
    assert where == context if context else where.startswith("api.device_"), body
    assert {k: v for k, v in body.items() if k != "time_created"} == DUPLICATE
    parse_time(body["time_created"])


# --- login ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["live", "test"])
def test_login_with_basic_auth_returns_an_hour_long_bearer_token(
    f_server: RunningServer, mode: str
) -> None:
    tenant = new_tenant(f_server)
    try:
        key = tenant.live_key if mode == "live" else tenant.test_key
        response = tenant.anon.get("/login", auth=(tenant.account_id, key))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert set(body) == {"bearer_token", "expires_in", "live_mode"}
        assert body["expires_in"] == 3600
        assert body["live_mode"] is (mode == "live")
        # A signed JWT: three base64url parts, the header naming a signing algorithm.
        parts = body["bearer_token"].split(".")
        assert len(parts) == 3 and all(parts)
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
        assert header["alg"] not in ("none", "None", "")
        # The token works, and its mode is the key's mode.
        with bearer_client(f_server, body["bearer_token"]) as client:
            assert create(client)["live_mode"] is (mode == "live")
    finally:
        tenant.close()


# --- create / get -----------------------------------------------------------------------


def test_create_returns_exactly_the_seed_device(tenant: Tenant) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    response = tenant.live.post("/devices", json={"reference_id": "DEV1234567890"})
    after = datetime.now(UTC)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/json")
    device = response.json()
    assert_device(
        device, account_id=tenant.account_id, live_mode=True, reference_id="DEV1234567890"
    )
    assert ACCOUNT_ID.match(device["account_id"])
    assert "last_seen" not in device  # no device call yet
    created = parse_time(device["time_created"])
    assert before - timedelta(seconds=1) <= created <= after + timedelta(seconds=1)
    # GET answers the same object.
    assert get(tenant.live, device["id"]) == device


def test_create_without_body_or_reference(tenant: Tenant) -> None:
    no_body = tenant.live.post("/devices")
    assert no_body.status_code == 201, no_body.text
    empty = tenant.live.post("/devices", json={})
    assert empty.status_code == 201, empty.text
    for device in (no_body.json(), empty.json()):
        assert_device(device, account_id=tenant.account_id, live_mode=True, reference_id="")
    assert no_body.json()["id"] != empty.json()["id"]
    in_test = create(tenant.test)
    assert_device(in_test, account_id=tenant.account_id, live_mode=False, reference_id="")
    assert get(tenant.test, in_test["id"]) == in_test


def test_each_device_gets_its_own_id(tenant: Tenant) -> None:
    ids = {create(tenant.live)["id"] for _ in range(10)}
    assert len(ids) == 10
    assert all(DEVICE_ID.match(device_id) for device_id in ids)


# --- list -------------------------------------------------------------------------------


def test_list_pages_both_ways_newest_first(tenant: Tenant) -> None:
    made = [create(tenant.live, f"page-{i:02d}") for i in range(35)]
    newest_first = [device["id"] for device in reversed(made)]

    empty = list_page(tenant.test)
    assert empty["data"] == [] and empty["has_more"] is False

    default = list_page(tenant.live)
    assert [d["id"] for d in default["data"]] == newest_first[:30]  # default limit 30
    assert default["has_more"] is True
    assert default["data"][0] == made[-1]  # list items are the same objects as GET
    for device in default["data"]:
        assert_device(
            device,
            account_id=tenant.account_id,
            live_mode=True,
            reference_id=device["reference_id"],
        )

    everything = list_page(tenant.live, limit=100)
    assert [d["id"] for d in everything["data"]] == newest_first
    assert everything["has_more"] is False
    assert list_page(tenant.live, limit=35)["has_more"] is False
    assert list_page(tenant.live, limit=34)["has_more"] is True
    one = list_page(tenant.live, limit=1)
    assert [d["id"] for d in one["data"]] == newest_first[:1] and one["has_more"] is True

    # Forwards (older) with starting_after.
    seen: list[str] = []
    has_more: list[bool] = []
    params: dict[str, Any] = {"limit": 10}
    while True:
        page = list_page(tenant.live, **params)
        seen += [d["id"] for d in page["data"]]
        has_more.append(page["has_more"])
        if not page["has_more"]:
            break
        params["starting_after"] = page["data"][-1]["id"]
    assert seen == newest_first
    assert has_more == [True, True, True, False]

    # Backwards (newer) with ending_before, from the oldest device.
    seen = []
    has_more = []
    params = {"limit": 10, "ending_before": newest_first[-1]}
    while True:
        page = list_page(tenant.live, **params)
        ids = [d["id"] for d in page["data"]]
        assert ids == sorted(ids, key=newest_first.index)  # each page newest first
        seen = ids + seen
        has_more.append(page["has_more"])
        if not page["has_more"]:
            break
        params["ending_before"] = ids[0]
    assert seen == newest_first[:-1]
    assert has_more == [True, True, True, False]

    # Both cursors name the same window from either side.
    after = list_page(tenant.live, limit=10, starting_after=newest_first[9])
    before = list_page(tenant.live, limit=10, ending_before=newest_first[20])
    assert [d["id"] for d in after["data"]] == newest_first[10:20]
    assert [d["id"] for d in before["data"]] == newest_first[10:20]
    assert after["has_more"] is True and before["has_more"] is True
    newest_end = list_page(tenant.live, ending_before=newest_first[0])
    assert newest_end["data"] == [] and newest_end["has_more"] is False
    oldest_end = list_page(tenant.live, starting_after=newest_first[-1])
    assert oldest_end["data"] == [] and oldest_end["has_more"] is False


def test_list_filters_by_reference_id(tenant: Tenant) -> None:
    wanted = create(tenant.live, "meter-42")
    create(tenant.live, "meter-43")
    create(tenant.live, "meter-4")
    create(tenant.live)
    page = list_page(tenant.live, reference_id="meter-42")
    assert page["data"] == [wanted] and page["has_more"] is False
    none = list_page(tenant.live, reference_id="meter-99")
    assert none["data"] == [] and none["has_more"] is False
    # The same reference in test mode is another device, not this one.
    other = create(tenant.test, "meter-42")
    assert list_page(tenant.test, reference_id="meter-42")["data"] == [other]
    assert list_page(tenant.live, reference_id="meter-42")["data"] == [wanted]


# --- update -----------------------------------------------------------------------------


def test_patch_changes_only_what_is_given(tenant: Tenant) -> None:
    device = create(tenant.live, "before")

    for unchanged in (
        tenant.live.patch(f"/devices/{device['id']}", json={}),
        tenant.live.patch(f"/devices/{device['id']}"),
    ):
        assert unchanged.status_code == 200, unchanged.text
        assert unchanged.json() == device
    assert get(tenant.live, device["id"]) == device

    renamed = tenant.live.patch(f"/devices/{device['id']}", json={"reference_id": "after"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json() == {**device, "reference_id": "after"}
    assert get(tenant.live, device["id"]) == {**device, "reference_id": "after"}
    assert list_page(tenant.live, reference_id="after")["data"] == [renamed.json()]
    assert list_page(tenant.live, reference_id="before")["data"] == []

    # The same value again is not a conflict with itself.
    again = tenant.live.patch(f"/devices/{device['id']}", json={"reference_id": "after"})
    assert again.status_code == 200, again.text
    assert again.json() == renamed.json()

    # An empty string clears the reference, and frees it for another device.
    cleared = tenant.live.patch(f"/devices/{device['id']}", json={"reference_id": ""})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json() == {**device, "reference_id": ""}
    assert get(tenant.live, device["id"])["reference_id"] == ""
    assert list_page(tenant.live, reference_id="after")["data"] == []
    reuse = create(tenant.live, "after")
    assert list_page(tenant.live, reference_id="after")["data"] == [reuse]


def test_patch_accepts_the_version_header_and_a_charset(tenant: Tenant) -> None:
    device = create(tenant.live)
    response = tenant.live.patch(
        f"/devices/{device['id']}",
        content=json.dumps({"reference_id": "ünïcødé ☃"}).encode(),
        headers={
            "content-type": "application/json; charset=utf-8",
            "flatpeak-version": API_VERSION,
        },
    )
    assert response.status_code == 200, response.text
    assert get(tenant.live, device["id"])["reference_id"] == "ünïcødé ☃"
    longest = "r" * 255
    response = tenant.live.patch(f"/devices/{device['id']}", json={"reference_id": longest})
    assert response.status_code == 200, response.text
    assert get(tenant.live, device["id"])["reference_id"] == longest


# --- delete -----------------------------------------------------------------------------


def test_delete_then_gone_everywhere(tenant: Tenant) -> None:
    older = create(tenant.live, "older")
    doomed = create(tenant.live, "doomed")
    newer = create(tenant.live, "newer")

    response = tenant.live.delete(f"/devices/{doomed['id']}")
    assert response.status_code == 202, response.text
    assert response.json() == {"message": "Accepted"}

    assert_error(tenant.live.get(f"/devices/{doomed['id']}"), 404, "invalid_request", "not_found")
    assert_error(
        tenant.live.patch(f"/devices/{doomed['id']}", json={"reference_id": "x"}),
        404,
        "invalid_request",
        "not_found",
    )
    assert_error(
        tenant.live.delete(f"/devices/{doomed['id']}"), 404, "invalid_request", "not_found"
    )
    assert [d["id"] for d in list_all(tenant.live)] == [newer["id"], older["id"]]
    assert list_page(tenant.live, reference_id="doomed")["data"] == []
    # A cursor may still name the deleted device.
    assert list_page(tenant.live, starting_after=doomed["id"])["data"] == [older]
    assert list_page(tenant.live, ending_before=doomed["id"])["data"] == [newer]
    # Its reference is free again; the others are untouched.
    assert create(tenant.live, "doomed")["id"] != doomed["id"]
    assert get(tenant.live, older["id"]) == older
    assert get(tenant.live, newer["id"]) == newer


# --- isolation --------------------------------------------------------------------------


def test_live_and_test_keys_are_separate_worlds(tenant: Tenant) -> None:
    live = create(tenant.live, "shared-ref")
    test = create(tenant.test, "shared-ref")  # unique per account *and mode*
    assert live["live_mode"] is True and test["live_mode"] is False

    for viewer, foreign in ((tenant.test, live), (tenant.live, test)):
        assert_error(viewer.get(f"/devices/{foreign['id']}"), 404, "invalid_request", "not_found")
        assert_error(
            viewer.patch(f"/devices/{foreign['id']}", json={"reference_id": "stolen"}),
            404,
            "invalid_request",
            "not_found",
        )
        assert_error(
            viewer.delete(f"/devices/{foreign['id']}"), 404, "invalid_request", "not_found"
        )
        assert_error(
            viewer.get("/devices", params={"starting_after": foreign["id"]}),
            400,
            "invalid_request",
            "invalid_parameter",
            mentions=["starting_after"],
        )
    assert list_all(tenant.live) == [live]
    assert list_all(tenant.test) == [test]
    assert get(tenant.live, live["id"]) == live
    assert get(tenant.test, test["id"]) == test


def test_another_accounts_device_is_not_found(f_server: RunningServer, tenant: Tenant) -> None:
    mine = create(tenant.live, "acme-1")
    other = new_tenant(f_server, "Globex")
    try:
        theirs = create(other.live, "acme-1")  # references are per account
        assert theirs["account_id"] == other.account_id != tenant.account_id
        assert_error(other.live.get(f"/devices/{mine['id']}"), 404, "invalid_request", "not_found")
        assert_error(
            other.live.patch(f"/devices/{mine['id']}", json={"reference_id": "mine-now"}),
            404,
            "invalid_request",
            "not_found",
        )
        assert_error(
            other.live.delete(f"/devices/{mine['id']}"), 404, "invalid_request", "not_found"
        )
        assert list_all(other.live) == [theirs]
        assert list_page(other.live, reference_id="acme-1")["data"] == [theirs]
        assert get(tenant.live, mine["id"]) == mine
        assert list_all(tenant.live) == [mine]
    finally:
        other.close()


# --- Flatpeak-Version -------------------------------------------------------------------


def test_the_documented_version_header_is_served(tenant: Tenant) -> None:
    version = {"flatpeak-version": API_VERSION}
    login = tenant.anon.get("/login", auth=(tenant.account_id, tenant.live_key), headers=version)
    assert login.status_code == 200, login.text
    created = tenant.live.post("/devices", json={"reference_id": "v"}, headers=version)
    assert created.status_code == 201, created.text
    device_id = created.json()["id"]
    assert tenant.live.get("/devices", headers=version).status_code == 200
    assert tenant.live.get(f"/devices/{device_id}", headers=version).status_code == 200
    patched = tenant.live.patch(
        f"/devices/{device_id}", json={"reference_id": "w"}, headers=version
    )
    assert patched.status_code == 200, patched.text
    assert tenant.live.delete(f"/devices/{device_id}", headers=version).status_code == 202


@pytest.mark.parametrize(
    "version",
    ["2024-01-01.anode", "2025-09-14", "2025-09-14.ANODE", "latest", "", f"{API_VERSION}x"],
)
def test_other_versions_are_refused_and_change_nothing(tenant: Tenant, version: str) -> None:
    device = create(tenant.live, "versioned")
    headers = {"flatpeak-version": version}

    def refused(response: httpx.Response) -> None:
        assert_error(
            response, 422, "invalid_request", "api_version_not_supported", mentions=["version"]
        )

    refused(tenant.anon.get("/login", auth=(tenant.account_id, tenant.live_key), headers=headers))
    refused(tenant.live.post("/devices", json={"reference_id": "new"}, headers=headers))
    refused(tenant.live.get("/devices", headers=headers))
    refused(tenant.live.get(f"/devices/{device['id']}", headers=headers))
    refused(
        tenant.live.patch(f"/devices/{device['id']}", json={"reference_id": "x"}, headers=headers)
    )
    refused(tenant.live.delete(f"/devices/{device['id']}", headers=headers))
    assert list_all(tenant.live) == [device]


# --- duplicate references ---------------------------------------------------------------


def test_duplicate_reference_is_a_conflict(tenant: Tenant) -> None:
    first = create(tenant.live, "DEV-DUP")
    duplicate = tenant.live.post("/devices", json={"reference_id": "DEV-DUP"})
    assert_duplicate(duplicate, "api.device_create")
    second = create(tenant.live, "DEV-OTHER")
    assert_duplicate(
        tenant.live.patch(f"/devices/{second['id']}", json={"reference_id": "DEV-DUP"}),
        "api.device_update",
    )
    assert get(tenant.live, second["id"]) == second  # the refused PATCH changed nothing
    assert get(tenant.live, first["id"]) == first
    assert list_page(tenant.live, reference_id="DEV-DUP")["data"] == [first]
    assert len(list_all(tenant.live)) == 2
    # References are compared exactly.
    assert create(tenant.live, "dev-dup")["reference_id"] == "dev-dup"
    assert create(tenant.live, "DEV-DUP ")["reference_id"] == "DEV-DUP "


def run_at_once(
    server: RunningServer, token: str, calls: list[tuple[str, str, dict[str, Any]]]
) -> list[httpx.Response]:
    """Send every call from its own thread and connection, released together."""
    clients = [bearer_client(server, token) for _ in calls]
    try:
        for client in clients:  # open the connections first: the barrier releases requests
            assert client.get("/healthz").status_code == 200
        barrier = threading.Barrier(len(calls))

        def send(index: int) -> httpx.Response:
            method, path, body = calls[index]
            barrier.wait(timeout=30)
            return clients[index].request(method, path, json=body)

        with ThreadPoolExecutor(len(calls)) as pool:
            return list(pool.map(send, range(len(calls))))
    finally:
        for client in clients:
            client.close()


def check_one_winner(
    tenant: Tenant, reference: str, responses: list[httpx.Response]
) -> httpx.Response:
    winners = [r for r in responses if r.is_success]
    assert len(winners) == 1, [r.status_code for r in responses]
    for response in responses:
        if response is not winners[0]:
            assert_duplicate(response)
    holders = list_page(tenant.live, reference_id=reference)["data"]
    assert holders == [winners[0].json()]
    return winners[0]


Scenario = Callable[[Tenant, str], list[tuple[str, str, dict[str, Any]]]]


def all_post(tenant: Tenant, reference: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [("POST", "/devices", {"reference_id": reference})] * 16


def all_patch(tenant: Tenant, reference: str) -> list[tuple[str, str, dict[str, Any]]]:
    devices = [create(tenant.live) for _ in range(16)]
    return [("PATCH", f"/devices/{d['id']}", {"reference_id": reference}) for d in devices]


def post_and_patch(tenant: Tenant, reference: str) -> list[tuple[str, str, dict[str, Any]]]:
    return all_post(tenant, reference)[:8] + all_patch(tenant, reference)[:8]


@pytest.mark.parametrize(
    "scenario", [all_post, all_patch, post_and_patch], ids=lambda s: s.__name__
)
def test_concurrent_writers_of_one_reference_get_one_winner(
    tenant: Tenant, scenario: Scenario
) -> None:
    for round_ in range(3):
        before = {d["id"]: d for d in list_all(tenant.live)}
        reference = f"race-{round_}-{secrets.token_hex(4)}"
        calls = scenario(tenant, reference)
        untouched = {d["id"]: d for d in list_all(tenant.live)}
        responses = run_at_once(tenant.server, tenant.live_token, calls)
        winner = check_one_winner(tenant, reference, responses).json()
        after = {d["id"]: d for d in list_all(tenant.live)}
        created = set(after) - set(untouched)
        posted = sum(1 for method, _, _ in calls if method == "POST")
        if winner["id"] in untouched:  # a PATCH won: no POST wrote anything
            assert created == set()
            assert after == {**untouched, winner["id"]: winner}
        else:  # a POST won: exactly its device is new, nothing else changed
            assert posted and created == {winner["id"]}
            assert {k: v for k, v in after.items() if k != winner["id"]} == untouched
        assert set(before) <= set(after)
