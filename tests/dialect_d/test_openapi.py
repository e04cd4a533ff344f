"""Dialect D's part of /openapi.json: what it documents is what the server answers."""

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
