"""What dialect D tests share: an account made with the CLI and a client per API key, and
the checks a client makes on seed 003's device and error shapes."""

from __future__ import annotations

import re
import ssl
import subprocess
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.support.server import RunningServer, create_account

BASE = "/iot/api/v2"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
# Seed 003's 201 example, plus our last_seen (null until the device itself calls us).
DEVICE_KEYS = {
    "id",
    "account_id",
    "division",
    "device_identifier",
    "device_profile",
    "created",
    "updated",
    "status",
    "fields",
    "device_api_allow_read",
    "device_api_allow_write",
    "device_api_allow_renew_certificate",
    "last_seen",
}
PROFILE_KEYS = {
    "id",
    "name",
    "division",
    "fields",
    "device_api_allow_read",
    "device_api_allow_write",
    "device_api_allow_renew_certificate",
}
CERTIFICATE_KEYS = {
    "certificate_id",
    "serial_number",
    "thumbprint",
    "pem",
    "not_before",
    "not_after",
    # ours, always present: ACTIVE, REVOKED or EXPIRED; "devreg" or the external CA;
    # when and why it was revoked (null while it is not); the credential that authorised it
    "status",
    "issuer",
    "revoked_at",
    "revocation_reason",
    "issued_by",
}
FLAGS = ("device_api_allow_read", "device_api_allow_write", "device_api_allow_renew_certificate")

# Plain HTTP needs no TLS, but every httpx.Client builds a context unless given one (20 ms).
_TLS = ssl.create_default_context()


def d_client(server: RunningServer, key: str | None = None, **headers: str) -> httpx.Client:
    if key is not None:
        headers["x-api-key"] = key
    return httpx.Client(base_url=server.base_url + BASE, headers=headers, timeout=30, verify=_TLS)


@dataclass
class Account:
    server: RunningServer
    account_id: str  # as the CLI prints it: acc_<32 hex>
    live_key: str
    test_key: str
    live: httpx.Client
    test: httpx.Client
    anon: httpx.Client  # no credentials

    @property
    def uuid(self) -> str:
        """The account id as dialect D renders it."""
        return str(uuid.UUID(hex=self.account_id.removeprefix("acc_")))

    def close(self) -> None:
        self.live.close()
        self.test.close()
        self.anon.close()


def new_account(server: RunningServer, name: str = "Acme") -> Account:
    made = create_account(server, name)
    return Account(
        server=server,
        account_id=made["account_id"],
        live_key=made["live_key"],
        test_key=made["test_key"],
        live=d_client(server, made["live_key"]),
        test=d_client(server, made["test_key"]),
        anon=d_client(server),
    )


def parse_time(text: str) -> datetime:
    assert RFC3339_Z.match(text), f"not RFC 3339 with Z: {text!r}"
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def assert_errors(
    response: httpx.Response, status: int, code: str, *, mentions: Iterable[str] = ()
) -> str:
    """Seed 003's error shape, exactly, with a message naming the problem; returns it."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"errors"}, body
    assert isinstance(body["errors"], list) and len(body["errors"]) == 1, body
    (error,) = body["errors"]
    assert set(error) == {"code", "message"}, body
    assert error["code"] == code, body
    message = error["message"]
    assert isinstance(message, str) and message.strip(), body
    for word in mentions:
        assert word.lower() in message.lower(), (word, message)
    return message


def assert_no_such_device(response: httpx.Response, device_id: str) -> None:
    """Seed 003's answer for an unknown device: 400 entity_not_found, in its words."""
    assert_errors(response, 400, "entity_not_found")
    assert response.json() == {
        "errors": [
            {"code": "entity_not_found", "message": f"Device with id {device_id} does not exist"}
        ]
    }


def check_device(body: Any, statuses: Iterable[str] = ("ACTIVE", "DISABLED")) -> dict[str, Any]:
    """Exactly seed 003's device fields, each of the documented type (`statuses`: DELETED
    too for the answer to a delete)."""
    assert isinstance(body, dict), body
    assert set(body) == DEVICE_KEYS, sorted(set(body) ^ DEVICE_KEYS)
    assert UUID.match(body["id"]), body
    assert UUID.match(body["account_id"]), body
    assert set(body["division"]) == {"id", "name"} and UUID.match(body["division"]["id"])
    assert set(body["device_profile"]) == {"id", "name"} and UUID.match(
        body["device_profile"]["id"]
    )
    assert isinstance(body["device_identifier"], str)
    assert parse_time(body["created"]) <= parse_time(body["updated"])
    assert body["status"] in set(statuses), body
    for field in body["fields"]:
        assert set(field) == {"id", "name", "value", "mandatory"}, field
        assert UUID.match(field["id"]) and isinstance(field["mandatory"], bool)
        assert isinstance(field["value"], str)
    for flag in FLAGS:
        assert isinstance(body[flag], bool), body
    assert body["last_seen"] is None or RFC3339_Z.match(body["last_seen"])
    return body


def check_profile(body: Any) -> dict[str, Any]:
    assert isinstance(body, dict) and set(body) == PROFILE_KEYS, body
    assert UUID.match(body["id"])
    assert set(body["division"]) == {"id", "name"}
    for field in body["fields"]:
        assert set(field) == {"id", "name", "mandatory"} and UUID.match(field["id"]), field
    return body


def make_division(client: httpx.Client, name: str) -> dict[str, Any]:
    response = client.post("/division", json={"name": name})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def make_profile(
    client: httpx.Client,
    name: str,
    *,
    division_id: str | None = None,
    fields: Iterable[tuple[str, bool]] = (("serial", True), ("colour", False)),
    **flags: bool,
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "name": name,
        "fields": [{"name": n, "mandatory": m} for n, m in fields],
        **flags,
    }
    if division_id is not None:
        request["division_id"] = division_id
    response = client.post("/device-profile", json=request)
    assert response.status_code == 201, response.text
    return check_profile(response.json())


def field_ids(profile: dict[str, Any]) -> dict[str, str]:
    return {field["name"]: field["id"] for field in profile["fields"]}


def values_of(device: dict[str, Any]) -> dict[str, str]:
    """A device's values by field name."""
    return {field["name"]: field["value"] for field in device["fields"]}


def make_device(
    client: httpx.Client,
    identifier: str,
    profile: dict[str, Any] | None = None,
    values: dict[str, str] | None = None,
) -> dict[str, Any]:
    request: dict[str, Any] = {"device_identifier": identifier}
    if profile is not None:
        ids = field_ids(profile)
        request["device_profile_id"] = profile["id"]
        request["division_id"] = profile["division"]["id"]
        request["fields"] = [{"id": ids[n], "value": v} for n, v in (values or {}).items()]
    response = client.post("/device", json=request)
    assert response.status_code == 201, response.text
    return check_device(response.json())


def get_device(client: httpx.Client, device_id: str) -> dict[str, Any]:
    response = client.get(f"/device/{device_id}")
    assert response.status_code == 200, response.text
    return check_device(response.json())


def list_devices(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get("/device", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    assert set(page) == {"limit", "offset", "total", "records"}, page
    for record in page["records"]:
        check_device(record)
    return page


def all_devices(client: httpx.Client) -> list[dict[str, Any]]:
    page = list_devices(client, limit=1000)
    assert page["total"] == len(page["records"]), "helper only for small accounts"
    records: list[dict[str, Any]] = page["records"]
    return records


# --- openssl -----------------------------------------------------------------------------------


def openssl(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def make_csr(directory: Path, name: str, key_args: Iterable[str] = ()) -> tuple[Path, str]:
    """A new key (EC P-256 unless `key_args` say otherwise) and a CSR for it."""
    key, csr = directory / f"{name}.key", directory / f"{name}.csr"
    args = list(key_args) or ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    openssl(directory, "genpkey", *args, "-out", str(key))
    openssl(directory, "req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr))
    return key, csr.read_text()


def example_profile_body(name: str, **flags: bool) -> dict[str, Any]:
    """A profile with one mandatory and one optional field, as DigiCert's examples use."""
    return {
        "name": name,
        "fields": [
            {"name": "Mandatory Field", "mandatory": True},
            {"name": "Optional Field", "mandatory": False},
        ],
        **flags,
    }


def example_device_body(profile: dict[str, Any], identifier: str) -> dict[str, Any]:
    """A device of `profile` (made from example_profile_body) with both fields set."""
    mandatory, optional = (field["id"] for field in profile["fields"])
    return {
        "division_id": profile["division"]["id"],
        "device_identifier": identifier,
        "device_profile_id": profile["id"],
        "fields": [{"id": mandatory, "value": "m0"}, {"id": optional, "value": "o0"}],
    }
