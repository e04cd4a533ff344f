"""What dialect F tests share: a tenant (an account made with the CLI, logged in with both
keys) and the checks a client makes on the seed's device and error objects."""

from __future__ import annotations

import base64
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.support.server import RunningServer, create_account

API_VERSION = "2025-09-14.anode"
DEVICE_ID = re.compile(r"^dev_[0-9a-f]{32}$")
ACCOUNT_ID = re.compile(r"^acc_[0-9a-f]{32}$")
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
# Seed 000's Device schema; last_seen only once the device itself has called us.
DEVICE_FIELDS = {"id", "object", "live_mode", "reference_id", "time_created", "account_id"}
ERROR_FIELDS = {"object", "live_mode", "context", "type", "code", "message", "time_created"}


# Plain HTTP needs no TLS, but every httpx.Client builds a context unless given one (20 ms).
_TLS = ssl.create_default_context()


def anonymous_client(server: RunningServer, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=30, verify=_TLS)


def bearer_client(server: RunningServer, token: str) -> httpx.Client:
    return anonymous_client(server, authorization=f"Bearer {token}")


@dataclass
class Tenant:
    server: RunningServer
    account_id: str
    live_key: str
    test_key: str
    live_token: str
    test_token: str
    live: httpx.Client
    test: httpx.Client
    anon: httpx.Client  # no credentials: for /login and for broken ones

    def close(self) -> None:
        self.live.close()
        self.test.close()
        self.anon.close()


def login(client: httpx.Client, account_id: str, key: str) -> str:
    response = client.get("/login", auth=(account_id, key))
    assert response.status_code == 200, response.text
    token: str = response.json()["bearer_token"]
    return token


def new_tenant(server: RunningServer, name: str = "Acme") -> Tenant:
    account = create_account(server, name)
    anon = anonymous_client(server)
    live_token = login(anon, account["account_id"], account["live_key"])
    test_token = login(anon, account["account_id"], account["test_key"])
    return Tenant(
        server=server,
        account_id=account["account_id"],
        live_key=account["live_key"],
        test_key=account["test_key"],
        live_token=live_token,
        test_token=test_token,
        live=bearer_client(server, live_token),
        test=bearer_client(server, test_token),
        anon=anon,
    )


def parse_time(text: str) -> datetime:
    assert RFC3339_Z.match(text), f"not RFC 3339 with Z: {text!r}"
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def assert_device(body: Any, *, account_id: str, live_mode: bool, reference_id: str) -> None:
    """Exactly the seed's Device fields, with the values a client expects."""
    assert isinstance(body, dict), body
    assert set(body) == DEVICE_FIELDS, body
    assert DEVICE_ID.match(body["id"]), body
    assert body["object"] == "device"
    assert body["live_mode"] is live_mode
    assert body["reference_id"] == reference_id
    assert body["account_id"] == account_id
    parse_time(body["time_created"])


def assert_error(
    response: httpx.Response,
    status: int,
    type_: str,
    code: str,
    *,
    mentions: Iterable[str] = (),
    live_mode: bool | None = None,
    context: str | None = None,
) -> dict[str, Any]:
    """Flatpeak's whole error object (seed 000's fields, `live_mode`, `context`), with a
    message that names the problem; `live_mode` and `context` checked when given."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body: dict[str, Any] = response.json()
    assert set(body) == ERROR_FIELDS, body
    assert body["object"] == "error"
    assert body["type"] == type_, body
    assert body["code"] == code, body
    assert isinstance(body["live_mode"], bool), body
    assert body["context"] == "api" or body["context"].startswith("api."), body
    if live_mode is not None:
        assert body["live_mode"] is live_mode, body
    if context is not None:
        assert body["context"] == context, body
    assert isinstance(body["message"], str) and body["message"].strip(), body
    for word in mentions:
        assert word.lower() in body["message"].lower(), (word, body["message"])
    parse_time(body["time_created"])
    return body


def list_page(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get("/devices", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    assert set(page) == {"object", "url", "has_more", "data"}, page
    assert page["object"] == "list"
    assert page["url"] == "/devices"
    assert isinstance(page["has_more"], bool)
    return page


def list_all(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Every device the client sees, newest first, walking the pages."""
    devices: list[dict[str, Any]] = []
    while True:
        page = list_page(client, limit=100, **params)
        devices.extend(page["data"])
        if not page["has_more"]:
            return devices
        params["starting_after"] = page["data"][-1]["id"]


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
