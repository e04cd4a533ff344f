"""Dialect D's part of /openapi.json: what it documents is what the server answers, and its
links lead from each made object to the operations on it."""

from __future__ import annotations

from typing import Any

from devreg.dialect_d.openapi import paths
from tests.dialect_d.helpers import Account, assert_errors, make_profile

BASE = "/iot/api/v2"


def operation(path: str, method: str) -> dict[str, Any]:
    found: dict[str, Any] = paths()[BASE + path][method]
    return found


def test_update_profile_documents_the_403_a_test_key_gets(account: Account) -> None:
    """A test-mode key may not change a profile (403): the document did not list that status
    (API-key operations listed no 403), so fuzzing with the test key failed on it."""
    profile = make_profile(account.live, "Sensor")
    refused = account.test.put(f"/device-profile/{profile['id']}", json={"name": "Renamed"})
    assert_errors(refused, 403, "access_denied", mentions=["live"])
    responses = operation("/device-profile/{id}", "put")["responses"]
    assert "403" in responses
    assert responses["403"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorsOut"
    }
    # API-key operations that cannot answer 403 still do not list it.
    assert "403" not in operation("/device-profile/{id}", "get")["responses"]
    assert "403" not in operation("/device", "post")["responses"]


def test_links_from_made_objects() -> None:
    created = operation("/device", "post")["responses"]["201"]["links"]
    assert created["GetDevice"] == {
        "operationId": "d-get-device",
        "description": "Read the device",
        "parameters": {"id": "$response.body#/id"},
    }
    assert {link["operationId"] for link in created.values()} >= {
        "d-get-device", "d-update-device", "d-delete-device", "d-disable-device",
        "d-enable-device", "d-issue-certificate", "d-list-certificates",
    }  # fmt: skip
    profile = operation("/device-profile", "post")["responses"]["201"]["links"]
    assert profile["CreateDevice"]["requestBody"] == {
        "device_profile_id": "$response.body#/id",
        "division_id": "$response.body#/division/id",
    }
    issued = operation("/device/{id}/certificate", "post")["responses"]["201"]["links"]
    assert issued["RevokeCertificate"]["parameters"] == {"id": "$response.body#/certificate_id"}
    disabled = operation("/device/{id}/disable", "put")["responses"]["200"]["links"]
    assert disabled["EnableDevice"]["parameters"] == {"id": "$response.body#/id"}
    deleted = operation("/device/{id}", "delete")["responses"]["200"]["links"]
    assert deleted["RestoreDevice"]["operationId"] == "d-restore-device"
    restored = operation("/device/{id}/restore", "put")["responses"]
    assert restored["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DeviceDetails"
    }


def test_a_body_is_documented_as_required_where_no_body_is_refused(account: Account) -> None:
    """Where no body at all is served as an empty object (a PUT that deletes every value,
    a profile update that changes nothing, a revocation for reason "unspecified"), the
    document no longer calls the body required; where it is refused, it still does."""
    profile = make_profile(account.live, "Sensor", fields=[("note", False)])
    device = account.live.post(
        "/device", json={"device_identifier": "d1", "device_profile_id": profile["id"],
                         "fields": [{"id": profile["fields"][0]["id"], "value": "x"}]},
    ).json()  # fmt: skip
    cert = account.live.post(f"/device/{device['id']}/certificate", json={"generate_key": True})
    sent = {
        ("/device/{id}", "put"): account.live.put(f"/device/{device['id']}"),
        ("/device-profile/{id}", "put"): account.live.put(f"/device-profile/{profile['id']}"),
        ("/certificate/{id}/revoke", "put"): account.live.put(
            f"/certificate/{cert.json()['certificate_id']}/revoke"
        ),
        ("/division", "post"): account.live.post("/division"),
        ("/device-profile", "post"): account.live.post("/device-profile"),
        ("/device", "post"): account.live.post("/device"),
        ("/device/{id}/certificate", "post"): account.live.post(
            f"/device/{device['id']}/certificate"
        ),
    }
    for (path, method), answer in sent.items():
        required = operation(path, method)["requestBody"]["required"]
        assert (answer.status_code >= 400) is required, (path, answer.status_code, answer.text)
    assert sent[("/device/{id}", "put")].json()["fields"] == []  # destructive, as documented
