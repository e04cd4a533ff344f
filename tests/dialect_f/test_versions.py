"""API versions: zero and anode are served, each account has a default (anode unless set),
the Flatpeak-Version header asks for another per request, every answer names the version
used, and one older than the default or not served is refused with 422, changing nothing."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from tests.dialect_f.helpers import Tenant, assert_error, bearer_client, login
from tests.support.server import RunningServer, run_cli

ZERO, ANODE = "2024-08-24.zero", "2025-09-14.anode"
NOT_SERVED = ["2026-01-01.busbar", "yotta", "2025-09-14", "2025-09-14.ANODE", "", "latest",
              "2024-08-24.zero.", "not a version"]  # fmt: skip


def zero_account(server: RunningServer) -> tuple[str, httpx.Client, httpx.Client]:
    """An account made with default zero: its id, a live client and an anonymous one."""
    done = run_cli(server.env, "account", "create", "--name", "Old", "--api-version", ZERO,
                   "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert set(made) == {"account_id", "live_key", "test_key"}
    anon = httpx.Client(base_url=server.base_url)
    return made["account_id"], bearer_client(server, login(anon, made["account_id"],
                                                            made["live_key"])), anon  # fmt: skip


def test_the_default_is_anode_and_every_answer_names_it(tenant: Tenant) -> None:
    made = tenant.live.post("/devices", json={"reference_id": "v"})
    answers = [
        made,
        tenant.live.get("/devices"),
        tenant.test.get("/devices"),
        tenant.live.patch(f"/devices/{made.json()['id']}", json={}),
        tenant.live.post("/devices", json={"reference_id": "v"}),  # 409
        tenant.anon.get("/devices"),  # 403
        tenant.anon.get("/login", auth=(tenant.account_id, tenant.live_key)),
        tenant.live.delete(f"/devices/{made.json()['id']}"),
        tenant.live.head("/devices"),
    ]
    for answer in answers:
        assert answer.headers["flatpeak-version"] == ANODE, (answer.request.url, answer.text)


def test_an_older_version_than_the_default_is_refused(tenant: Tenant) -> None:
    before = tenant.live.get("/devices").json()["data"]
    older = {"flatpeak-version": ZERO}
    expected = f"Requested API version {ZERO} older than account default {ANODE}"
    for answer, live_mode in [
        (tenant.live.post("/devices", json={"reference_id": "x"}, headers=older), True),
        (tenant.test.get("/devices", headers=older), False),
        (tenant.anon.get("/login", auth=(tenant.account_id, tenant.live_key), headers=older),
         True),
    ]:  # fmt: skip
        body = assert_error(answer, 422, "invalid_request", "api_version_not_supported",
                            live_mode=live_mode, context="api")  # fmt: skip
        assert body["message"] == expected
        assert answer.headers["flatpeak-version"] == ANODE  # the version the error is in
    assert tenant.live.get("/devices").json()["data"] == before


@pytest.mark.parametrize("version", NOT_SERVED)
def test_a_version_not_served_is_refused_naming_both(tenant: Tenant, version: str) -> None:
    headers = {"flatpeak-version": version}
    made = tenant.live.post("/devices", json={"reference_id": "kept"}).json()
    for answer in [
        tenant.live.post("/devices", json={"reference_id": "never"}, headers=headers),
        tenant.live.patch(f"/devices/{made['id']}", json={"reference_id": "no"}, headers=headers),
        tenant.live.delete(f"/devices/{made['id']}", headers=headers),
        tenant.anon.get("/login", auth=(tenant.account_id, tenant.live_key), headers=headers),
    ]:
        body = assert_error(answer, 422, "invalid_request", "api_version_not_supported",
                            live_mode=True, context="api")  # fmt: skip
        assert ZERO in body["message"] and ANODE in body["message"], body
    assert [d["reference_id"] for d in tenant.live.get("/devices").json()["data"]] == ["kept"]


def test_auth_is_judged_before_the_version(tenant: Tenant) -> None:
    for version in (ZERO, "yotta"):
        answer = tenant.anon.get("/devices", headers={"flatpeak-version": version})
        assert_error(answer, 403, "invalid_request", "access_denied", live_mode=False,
                     context="api.device_list")  # fmt: skip


def test_a_zero_account_is_served_zero_and_may_ask_for_anode(f_server: RunningServer) -> None:
    _, old, anon = zero_account(f_server)
    try:
        made = old.post("/devices", json={"reference_id": "z"})
        assert made.status_code == 201 and made.headers["flatpeak-version"] == ZERO
        assert set(made.json()) == {"id", "object", "live_mode", "reference_id",
                                    "time_created", "account_id"}  # fmt: skip
        asked = old.get("/devices", headers={"flatpeak-version": ANODE})
        assert asked.status_code == 200 and asked.headers["flatpeak-version"] == ANODE
        same = old.get("/devices", headers={"flatpeak-version": ZERO})
        assert same.status_code == 200 and same.headers["flatpeak-version"] == ZERO
        missing = old.get("/devices/dev_" + "0" * 32)
        assert_error(missing, 404, "invalid_request", "not_found", context="api.device_get")
        assert missing.headers["flatpeak-version"] == ZERO
    finally:
        old.close()
        anon.close()


def test_set_version_holds_from_the_next_login(f_server: RunningServer) -> None:
    account_id, old, anon = zero_account(f_server)
    try:
        done = run_cli(f_server.env, "account", "set-version", account_id, ANODE)
        assert done.returncode == 0, done.stderr
        assert account_id in done.stdout and ANODE in done.stdout
        # the token carries the default it was issued with (at most an hour)
        assert old.get("/devices").headers["flatpeak-version"] == ZERO
    finally:
        old.close()
        anon.close()
    made = run_cli(f_server.env, "account", "create", "--name", "N", "--json")
    fresh = json.loads(made.stdout)
    with httpx.Client(base_url=f_server.base_url) as anon2:
        first = login(anon2, fresh["account_id"], fresh["live_key"])
        assert run_cli(f_server.env, "account", "set-version", fresh["account_id"],
                       ZERO).returncode == 0  # fmt: skip
        second = login(anon2, fresh["account_id"], fresh["live_key"])
    with bearer_client(f_server, first) as before, bearer_client(f_server, second) as after:
        assert before.get("/devices").headers["flatpeak-version"] == ANODE
        assert after.get("/devices").headers["flatpeak-version"] == ZERO
        older = after.get("/devices", headers={"flatpeak-version": ZERO})
        assert older.status_code == 200


def test_the_header_is_read_without_its_spaces_and_refused_twice(tenant: Tenant) -> None:
    # httpx will not send a value with spaces around it: a socket does
    host, port = tenant.server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"GET /devices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tenant.live_token}"
            f"\r\nFlatpeak-Version: {ANODE} \t \r\nConnection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head = answer.split(b"\r\n\r\n")[0].decode().lower()
    assert head.startswith("http/1.1 200"), head
    assert f"flatpeak-version: {ANODE}" in head
    for pair in ((ANODE, "2026-01-01.busbar"), ("2026-01-01.busbar", ANODE), (ANODE, ANODE)):
        twice = tenant.live.post(
            "/devices",
            json={"reference_id": "never-made"},
            headers=[("flatpeak-version", pair[0]), ("flatpeak-version", pair[1])],
        )
        body = assert_error(twice, 422, "invalid_request", "api_version_not_supported",
                            mentions=["more than once"])  # fmt: skip
        assert body["context"] == "api" and body["live_mode"] is True  # as Flatpeak shows it
    listed = tenant.live.get("/devices", params={"reference_id": "never-made"}).json()
    assert listed["data"] == []
