"""One `devreg serve` (with its client-authentication listener) per store for the whole
conformance suite; each test gets a fresh account, seen through both dialects."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dialect_d.helpers import (
    FLAGS,
    Account,
    d_client,
    example_device_body,
    example_profile_body,
)
from tests.dialect_f.helpers import anonymous_client, bearer_client, login
from tests.support.server import STORES, RunningServer, create_account, start_server

D = "/iot/api/v2"


@dataclass
class Vendors:
    """One account: its D clients (x-api-key) and F clients (bearer tokens of its keys)."""

    server: RunningServer
    d: Account
    f_live: httpx.Client
    f_test: httpx.Client
    directory: Path

    def close(self) -> None:
        self.d.close()
        self.f_live.close()
        self.f_test.close()

    def profile(self, name: str = "Device Profile", *, device_api: bool = False) -> dict[str, Any]:
        """A profile with one mandatory and one optional field, as DigiCert's examples use;
        with `device_api`, its devices may read, update and renew over client auth."""
        flags = {flag: True for flag in FLAGS} if device_api else {}
        made = self.d.live.post("/device-profile", json=example_profile_body(name, **flags))
        assert made.status_code == 201, made.text
        profile: dict[str, Any] = made.json()
        return profile

    def device(self, profile: dict[str, Any], identifier: str) -> dict[str, Any]:
        made = self.d.live.post("/device", json=example_device_body(profile, identifier))
        assert made.status_code == 201, made.text
        device: dict[str, Any] = made.json()
        return device

    def device_client(self, device_id: str) -> httpx.Client:
        """A client of the client-authentication listener holding the device's certificate
        (its key made by devreg and shown once)."""
        issued = self.d.live.post(f"/device/{device_id}/certificate", json={"generate_key": True})
        assert issued.status_code == 201, issued.text
        cert, key = self.directory / f"{device_id}.pem", self.directory / f"{device_id}.key"
        cert.write_text(issued.json()["pem"])
        key.write_text(issued.json()["private_key"])
        key.chmod(0o600)
        context = ssl.create_default_context(cafile=str(self.server.data_dir / "ca.pem"))
        context.load_cert_chain(cert, key)
        assert self.server.mtls_port is not None
        return httpx.Client(
            base_url=f"https://localhost:{self.server.mtls_port}{D}", verify=context, timeout=30
        )


@pytest.fixture(scope="session", params=STORES)
def vendor_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    running = start_server(
        tmp_path_factory.mktemp(f"conformance-{request.param}") / "data",
        database_url=database_url,
        rate_limit=0,
        mtls=True,
    )
    try:
        yield running
    finally:
        running.stop()


def new_vendors(server: RunningServer, directory: Path, name: str = "Acme") -> Vendors:
    """A fresh account on `server`, with its D clients and F tokens of both keys."""
    made = create_account(server, name)
    anon = anonymous_client(server)
    try:
        live = login(anon, made["account_id"], made["live_key"])
        test = login(anon, made["account_id"], made["test_key"])
    finally:
        anon.close()
    return Vendors(
        server=server,
        d=Account(
            server=server,
            account_id=made["account_id"],
            live_key=made["live_key"],
            test_key=made["test_key"],
            live=d_client(server, made["live_key"]),
            test=d_client(server, made["test_key"]),
            anon=d_client(server),
        ),
        f_live=bearer_client(server, live),
        f_test=bearer_client(server, test),
        directory=directory,
    )


@pytest.fixture
def vendors(vendor_server: RunningServer, tmp_path: Path) -> Iterator[Vendors]:
    world = new_vendors(vendor_server, tmp_path)
    try:
        yield world
    finally:
        world.close()


LIMITED_RATE = 0.05  # one request per 20 s: no refill within a test
LIMITED_BURST = 3


@pytest.fixture(scope="session")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server whose rate limit is reached after three requests (the limit is kept in
    memory or Redis, never in the store: SQLite is enough)."""
    running = start_server(
        tmp_path_factory.mktemp("conformance-limited") / "data",
        rate_limit=LIMITED_RATE,
        rate_burst=LIMITED_BURST,
    )
    try:
        yield running
    finally:
        running.stop()
