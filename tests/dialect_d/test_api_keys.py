"""API keys over HTTP (issue 15), in process: `/iot/api/v2/api-key` in dialect D's style,
read-only keys, revocation and rotation as a client sees them in both dialects, and a
disabled account's answers (dialect F's 422 `account_disabled`, dialect D's 403)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from devreg.core.accounts import set_account_disabled
from devreg.core.records import Actor, ActorKind, Origin
from tests.support.inprocess import BASE_URL, AppClient, D

CLI = Origin(Actor(ActorKind.CLI, "test"), "req_test")


def key_client(app: AppClient, secret: str) -> httpx.AsyncClient:
    return app._new_client(BASE_URL + D, {"x-api-key": secret})


async def token_client(app: AppClient, secret: str) -> httpx.AsyncClient:
    answer = await app.client.get("/login", auth=(app.account.account_id, secret))
    assert answer.status_code == 200, answer.text
    bearer = {"authorization": "Bearer " + answer.json()["bearer_token"]}
    return app._new_client(BASE_URL, bearer)


async def new_key(app: AppClient, **body: Any) -> dict[str, Any]:
    made = await app.d().post("/api-key", json={"name": "deploy", **body})
    assert made.status_code == 201, made.text
    answer: dict[str, Any] = made.json()
    return answer


def assert_d_error(response: httpx.Response, status: int, code: str, *words: str) -> None:
    assert response.status_code == status, response.text
    (error,) = response.json()["errors"]
    assert error["code"] == code, error
    for word in words:
        assert word.lower() in error["message"].lower(), (word, error["message"])


async def test_a_key_made_over_http_works_in_both_dialects_and_its_secret_is_shown_once(
    app_client: AppClient,
) -> None:
    made = await app_client.d().post("/api-key", json={"name": "ci deploy"})
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    body = made.json()
    secret, key = body["secret"], body["key"]
    assert secret.startswith("sk_live_") and secret.startswith(key["prefix"])
    assert key | {"id": None, "prefix": None, "created": None} == {
        "id": None, "name": "ci deploy", "mode": "live", "scope": "write", "prefix": None,
        "status": "ACTIVE", "created": None, "last_used": None, "expires_at": None,
        "revoked_at": None, "rotated_from": None, "division_ids": None,
    }  # fmt: skip
    assert (await key_client(app_client, secret).get("/device")).status_code == 200
    assert (await (await token_client(app_client, secret)).get("/devices")).status_code == 200

    listed = await app_client.d().get("/api-key")
    assert listed.status_code == 200
    assert [record["name"] for record in listed.json()["records"]] == ["default", "ci deploy"]
    assert secret not in listed.text  # the secret is in the 201 only
    one = await app_client.d().get(f"/api-key/{key['id']}")
    assert one.json() == key


async def test_a_mode_sees_only_its_own_keys(app_client: AppClient) -> None:
    live = await new_key(app_client)
    test_keys = await app_client.d(live=False).get("/api-key")
    assert [r["mode"] for r in test_keys.json()["records"]] == ["test"]
    other_mode = await app_client.d(live=False).get(f"/api-key/{live['key']['id']}")
    assert_d_error(other_mode, 400, "entity_not_found", live["key"]["id"])


async def test_a_read_key_reads_and_changes_nothing(app_client: AppClient) -> None:
    reader = await new_key(app_client, scope="read")
    assert reader["key"]["scope"] == "read"
    d = key_client(app_client, reader["secret"])
    f = await token_client(app_client, reader["secret"])
    profile = await app_client.profile()
    assert (await d.get("/device")).status_code == 200
    assert (await f.get("/devices")).status_code == 200
    refused = await d.post("/device-profile", json={"name": "Not made"})
    assert_d_error(refused, 403, "access_denied", "read-only")
    refused = await d.post("/device", json={"device_profile_id": profile["id"]})
    assert_d_error(refused, 403, "access_denied", "read-only")
    refused_f = await f.post("/devices", json={})
    assert refused_f.status_code == 403 and refused_f.json()["code"] == "access_denied"
    assert "read-only" in refused_f.json()["message"]
    # nothing was made by the refused calls
    profiles = await app_client.d().get("/device-profile")
    assert [p["name"] for p in profiles.json()["records"]] == ["Default", "Device Profile"]
    assert (await app_client.d().get("/device")).json()["total"] == 0
    # managing keys needs a write key, even to read them
    assert_d_error(await d.get("/api-key"), 403, "access_denied", "write key")
    assert_d_error(await d.post("/api-key", json={"name": "x"}), 403, "access_denied")


async def test_a_key_revoked_over_http_is_refused_the_moment_the_call_returns(
    app_client: AppClient,
) -> None:
    made = await new_key(app_client)
    d = key_client(app_client, made["secret"])
    f = await token_client(app_client, made["secret"])
    assert (await d.get("/device")).status_code == 200
    assert (await f.get("/devices")).status_code == 200  # the token is verified and cached
    revoked = await app_client.d().put(f"/api-key/{made['key']['id']}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "REVOKED" and revoked.json()["revoked_at"]
    assert_d_error(await d.get("/device"), 401, "invalid_api_key")
    refused = await f.get("/devices")
    assert refused.status_code == 403 and refused.json()["code"] == "access_denied"
    login = await app_client.client.get(
        "/login", auth=(app_client.account.account_id, made["secret"])
    )
    assert login.status_code == 403
    again = await app_client.d().put(f"/api-key/{made['key']['id']}/revoke")
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]


async def test_rotation_gives_a_successor_and_ends_the_old_key_after_the_overlap(
    app_client: AppClient,
) -> None:
    old = await new_key(app_client, scope="read", expires_in_days=30)
    rotated = await app_client.d().post(
        f"/api-key/{old['key']['id']}/rotate", json={"overlap_hours": 1}
    )
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()
    assert new["replaces"] == old["key"]["id"]
    assert new["key"]["rotated_from"] == old["key"]["id"]
    assert (new["key"]["name"], new["key"]["scope"]) == ("deploy", "read")
    assert new["key"]["expires_at"] is not None
    assert (await key_client(app_client, old["secret"]).get("/device")).status_code == 200
    assert (await key_client(app_client, new["secret"]).get("/device")).status_code == 200
    at_once = await app_client.d().post(
        f"/api-key/{new['key']['id']}/rotate", json={"overlap_hours": 0}
    )
    assert at_once.status_code == 201
    assert_d_error(
        await key_client(app_client, new["secret"]).get("/device"), 401, "invalid_api_key"
    )
    rotate_revoked = await app_client.d().post(f"/api-key/{new['key']['id']}/rotate")
    assert_d_error(rotate_revoked, 400, "invalid_input", "revoked")


async def test_a_key_cannot_make_a_key_with_more_rights_than_its_own(
    app_client: AppClient,
) -> None:
    expiring = await new_key(app_client, expires_in_days=2)
    d = key_client(app_client, expiring["secret"])
    refused = await d.post("/api-key", json={"name": "forever"})
    assert_d_error(refused, 403, "access_denied", "outlive")
    refused = await d.post("/api-key", json={"name": "longer", "expires_in_days": 3})
    assert_d_error(refused, 403, "access_denied", "outlive")
    shorter = await d.post("/api-key", json={"name": "shorter", "expires_in_days": 1})
    assert shorter.status_code == 201, shorter.text


async def test_bad_key_requests_are_400s_that_make_nothing(app_client: AppClient) -> None:
    before = (await app_client.d().get("/api-key")).json()["total"]
    for body, field in (
        ({"name": "x", "secret": "sk_live_mine"}, "secret"),
        ({"name": ""}, "name"),
        ({"name": "x", "scope": "admin"}, "scope"),
        ({"name": "x", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "x", "expires_in_days": 3651}, "expires_in_days"),
        ({}, "name"),
    ):
        refused = await app_client.d().post("/api-key", json=body)
        assert_d_error(refused, 400, "invalid_input", field)
    assert (await app_client.d().get("/api-key")).json()["total"] == before
    assert_d_error(await app_client.d().get("/api-key/nope"), 400, "invalid_input", "uuid")
    unknown = "00000000-0000-4000-8000-000000000000"
    assert_d_error(await app_client.d().get(f"/api-key/{unknown}"), 400, "entity_not_found")
    assert_d_error(await app_client.d().put(f"/api-key/{unknown}/revoke"), 400, "entity_not_found")


async def test_key_changes_are_in_the_change_log_without_their_secrets(
    app_client: AppClient,
) -> None:
    made = await new_key(app_client)
    await app_client.d().put(f"/api-key/{made['key']['id']}/revoke")
    log = await app_client.d().get("/audit-log", params={"object_id": made["key"]["id"]})
    assert log.status_code == 200, log.text
    actions = [(r["action"], r["actor"]["kind"]) for r in log.json()["records"]]
    assert ("api_key.create", "api_key") in actions and ("api_key.revoke", "api_key") in actions
    text = json.dumps(log.json())
    assert made["secret"] not in text and made["key"]["prefix"] not in text


async def test_a_disabled_account_is_refused_in_each_dialect_s_words_until_enabled(
    app_client: AppClient,
) -> None:
    assert app_client.app.services is not None
    store = app_client.app.services.store
    f = await app_client.f()
    account = app_client.account.account_id
    await set_account_disabled(store, account, True, CLI)

    refused = await f.get("/devices")
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert (body["type"], body["code"], body["message"]) == (
        "api_error", "account_disabled", "Your account is disabled",
    )  # fmt: skip
    assert body["live_mode"] is True and body["context"] == "api.device_list"
    login = await app_client.client.get("/login", auth=(account, app_client.account.live_key))
    assert login.status_code == 422 and login.json()["code"] == "account_disabled"
    assert_d_error(await app_client.d().get("/device"), 403, "access_denied", account, "disabled")

    await set_account_disabled(store, account, False, CLI)
    assert (await f.get("/devices")).status_code == 200  # the same token works again
    assert (await app_client.d().get("/device")).status_code == 200


async def test_a_write_whose_body_arrives_after_the_revocation_is_refused(
    app_client: AppClient,
) -> None:
    """The credential is checked again once the body is in: a request that passed the
    check, then held its body back until the key's revocation returned, changes nothing."""
    made = await new_key(app_client)
    d = key_client(app_client, made["secret"])
    f = await token_client(app_client, made["secret"])
    device = await app_client.device(await app_client.profile(), "held-1")
    f_id = "dev_" + device["id"].replace("-", "")
    assert (await f.get(f"/devices/{f_id}")).status_code == 200  # the token is cached
    release = asyncio.Event()
    entered = asyncio.Event()

    def held(body: dict[str, Any]) -> Any:
        async def chunks() -> Any:
            entered.set()
            await release.wait()
            yield json.dumps(body).encode()

        return chunks()

    async def revoke_then_release() -> None:
        await entered.wait()
        revoked = await app_client.d().put(f"/api-key/{made['key']['id']}/revoke")
        assert revoked.status_code == 200, revoked.text
        release.set()

    patch, _ = await asyncio.gather(
        f.patch(f"/devices/{f_id}", content=held({"reference_id": "late"}),
                headers={"content-type": "application/json"}),
        revoke_then_release(),
    )  # fmt: skip
    assert patch.status_code == 403 and patch.json()["code"] == "access_denied", patch.text
    # The same for dialect D with a second key.
    second = await new_key(app_client)
    d = key_client(app_client, second["secret"])
    release.clear(), entered.clear()
    made = second
    put, _ = await asyncio.gather(
        d.put(f"/device/{device['id']}", content=held({"device_identifier": "late"}),
              headers={"content-type": "application/json"}),
        revoke_then_release(),
    )  # fmt: skip
    assert_d_error(put, 401, "invalid_api_key", "Invalid API key")
    now = await app_client.d().get(f"/device/{device['id']}")
    assert now.json()["device_identifier"] == "held-1"
    owner_f = await app_client.f()
    assert (await owner_f.get(f"/devices/{f_id}")).json()["reference_id"] == ""
