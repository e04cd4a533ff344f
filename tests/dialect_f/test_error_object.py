"""Flatpeak's whole error object on every dialect F error: the caller's mode (`live_mode`,
false when no valid credential was shown) and where it failed (`context`)."""

from __future__ import annotations

import httpx
import pytest

from tests.dialect_f.helpers import Tenant, assert_error

NO_SUCH = "dev_" + "0" * 32


@pytest.mark.parametrize("mode", ["live", "test"])
def test_each_endpoint_names_itself_in_the_callers_mode(tenant: Tenant, mode: str) -> None:
    client = tenant.live if mode == "live" else tenant.test
    live = mode == "live"
    made = client.post("/devices", json={"reference_id": "A"}).json()
    client.post("/devices", json={"reference_id": "B"})
    json_header = {"content-type": "application/json"}
    cases = [
        (client.post("/devices", json={"reference_id": "A"}), 409, "conflict",
         "duplicate_reference", "api.device_create"),
        (client.post("/devices", content=b"{", headers=json_header), 400, "invalid_request",
         "invalid_json", "api.device_create"),
        (client.get("/devices", params={"limit": "0"}), 400, "invalid_request",
         "invalid_parameter", "api.device_list"),
        (client.get("/devices", params={"colour": "red"}), 400, "invalid_request",
         "invalid_parameter", "api.device_list"),
        (client.get(f"/devices/{NO_SUCH}"), 404, "invalid_request", "not_found",
         "api.device_get"),
        (client.get("/devices/nope"), 404, "invalid_request", "not_found", "api.device_get"),
        (client.patch(f"/devices/{made['id']}", json={"reference_id": "B"}), 409, "conflict",
         "duplicate_reference", "api.device_update"),
        (client.patch(f"/devices/{made['id']}", json={"colour": "red"}), 400,
         "invalid_request", "invalid_parameter", "api.device_update"),
        (client.delete(f"/devices/{NO_SUCH}"), 404, "invalid_request", "not_found",
         "api.device_delete"),
    ]  # fmt: skip
    for answer, status, type_, code, context in cases:
        assert_error(answer, status, type_, code, live_mode=live, context=context)
    # the refused calls changed nothing
    listed = client.get("/devices").json()["data"]
    assert sorted(d["reference_id"] for d in listed) == ["A", "B"]


def test_no_valid_credential_is_live_mode_false(tenant: Tenant) -> None:
    anon = tenant.anon
    forged = {"authorization": "Bearer " + tenant.live_token[:-4] + "AAAA"}
    for answer, context in [
        (anon.get("/devices"), "api.device_list"),
        (anon.post("/devices", json={}), "api.device_create"),
        (anon.get(f"/devices/{NO_SUCH}", headers=forged), "api.device_get"),
        (anon.patch(f"/devices/{NO_SUCH}", json={}, headers=forged), "api.device_update"),
        (anon.delete(f"/devices/{NO_SUCH}", headers=forged), "api.device_delete"),
        (anon.get("/login", auth=(tenant.account_id, "sk_live_" + "0" * 43)), "api.login"),
        (anon.get("/login"), "api.login"),
    ]:
        assert_error(
            answer, 403, "invalid_request", "access_denied", live_mode=False, context=context
        )


def test_unknown_paths_and_wrong_methods_are_context_api(tenant: Tenant) -> None:
    for answer, status, code in [
        (tenant.live.get("/no-such-path"), 404, "not_found"),
        (tenant.live.get("/devices/x/y"), 404, "not_found"),
        (tenant.live.put("/devices"), 405, "method_not_allowed"),
        (tenant.live.post("/login"), 405, "method_not_allowed"),
        (tenant.live.put(f"/devices/{NO_SUCH}"), 405, "method_not_allowed"),
    ]:
        # no handler ran, so no credential was looked at
        body = assert_error(answer, status, "invalid_request", code, live_mode=False)
        assert body["context"] == "api", body
        assert answer.headers["flatpeak-version"] == "2025-09-14.anode"


def test_a_credential_error_then_a_good_call_on_one_connection(tenant: Tenant) -> None:
    """The mode belongs to the request, never to the connection it came on."""
    with httpx.Client(base_url=tenant.server.base_url) as one:
        bearer = {"authorization": f"Bearer {tenant.live_token}"}
        assert one.get("/devices", headers=bearer).status_code == 200
        assert_error(one.get("/devices"), 403, "invalid_request", "access_denied",
                     live_mode=False)  # fmt: skip
        assert_error(one.get(f"/devices/{NO_SUCH}", headers=bearer), 404, "invalid_request",
                     "not_found", live_mode=True)  # fmt: skip
        assert_error(one.get("/nowhere"), 404, "invalid_request", "not_found", live_mode=False)
