"""The real ASGI app in-process, for handler tests: `DevregApp` on a data directory made
the way `devreg init` makes it, an account made the way `devreg account create` makes it,
and httpx clients over `httpx.ASGITransport` (no process, no socket, no TLS).

For what needs a process (signals, workers, listeners, TLS, the server's own limits and
logs) use the `devreg serve` subprocess of tests/support/server.py instead."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devreg.cli.main import create_account as cli_create_account
from devreg.cli.main import initialise
from devreg.server.app import DevregApp
from devreg.server.config import Config, ensure_data_dir, load_config
from tests.dialect_d.helpers import example_device_body, example_profile_body

BASE_URL = "http://testserver"
D = "/iot/api/v2"  # dialect D's prefix


@dataclass(frozen=True)
class AppAccount:
    """An account and its two API keys, as `devreg account create --json` prints them."""

    account_id: str  # acc_<32 hex>
    live_key: str
    test_key: str

    @property
    def id(self) -> bytes:
        return bytes.fromhex(self.account_id.removeprefix("acc_"))

    @property
    def uuid(self) -> str:
        """The account id as dialect D renders it."""
        return str(uuid.UUID(bytes=self.id))

    def key(self, live: bool = True) -> str:
        return self.live_key if live else self.test_key


@dataclass
class AppClient:
    """The app, a client without credentials (`client`), the account, and clients that
    carry the account's credentials (closed with the fixture)."""

    app: DevregApp
    client: httpx.AsyncClient
    account: AppAccount
    data_dir: Path
    database_url: str | None
    _clients: list[httpx.AsyncClient] = field(default_factory=list)
    _by_kind: dict[tuple[str, bool], httpx.AsyncClient] = field(default_factory=dict)

    def _new_client(self, base_url: str, headers: dict[str, str]) -> httpx.AsyncClient:
        made = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url=base_url, headers=headers
        )
        self._clients.append(made)
        return made

    async def token(self, live: bool = True) -> str:
        """A dialect F bearer token of the live (or test) key, got as clients get one:
        GET /login with the account id and the key as basic auth."""
        answer = await self.client.get(
            "/login", auth=(self.account.account_id, self.account.key(live))
        )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["bearer_token"]
        return token

    def d(self, live: bool = True) -> httpx.AsyncClient:
        """The dialect D client (base URL /iot/api/v2) sending the live (or test) key."""
        if ("d", live) not in self._by_kind:
            made = self._new_client(BASE_URL + D, {"x-api-key": self.account.key(live)})
            self._by_kind["d", live] = made
        return self._by_kind["d", live]

    async def f(self, live: bool = True) -> httpx.AsyncClient:
        """The dialect F client with a bearer token of the live (or test) key."""
        if ("f", live) not in self._by_kind:
            bearer = {"authorization": f"Bearer {await self.token(live)}"}
            self._by_kind["f", live] = self._new_client(BASE_URL, bearer)
        return self._by_kind["f", live]

    async def profile(self, name: str = "Device Profile") -> dict[str, Any]:
        """A profile with one mandatory and one optional field (as the conformance suite's
        `Vendors.profile` makes it), by the live key."""
        made = await self.d().post("/device-profile", json=example_profile_body(name))
        assert made.status_code == 201, made.text
        profile: dict[str, Any] = made.json()
        return profile

    async def device(self, profile: dict[str, Any], identifier: str) -> dict[str, Any]:
        """A live device of `profile` with both fields set (as `Vendors.device` makes it)."""
        made = await self.d().post("/device", json=example_device_body(profile, identifier))
        assert made.status_code == 201, made.text
        device: dict[str, Any] = made.json()
        return device

    async def aclose(self) -> None:
        for made in self._clients:
            await made.aclose()
        self._clients.clear()
        self._by_kind.clear()


async def init_data_dir(config: Config) -> None:
    """What `devreg init` does, through its own code (cli/main.py): the data directory
    (owner only), the schema, the token signing key, the CA and the server certificate."""
    ensure_data_dir(config)
    await initialise(config)


async def create_account(config: Config, name: str = "Acme") -> AppAccount:
    """What `devreg account create --name NAME` does, through its own code: the account
    with its default division and profile and its live and test keys, by the CLI's origin."""
    made = await cli_create_account(config, name)
    return AppAccount(made["account_id"], made["live_key"], made["test_key"])


def app_config(data_dir: Path, database_url: str | None, **settings: object) -> Config:
    """The app's configuration, from these values only (no DEVREG_* of the environment):
    rate limits, access log and change log retention off, no TLS listeners, unless
    `settings` (Config fields) say otherwise."""
    values: dict[str, object] = {
        "data_dir": str(data_dir),
        "database_url": database_url,
        "rate_limit": 0,
        "access_log": False,
        "audit_retention_days": 0,
        "mtls_port": 0,
        "est_port": 0,
    }
    return load_config({**values, **settings}, environ={})


@contextlib.asynccontextmanager
async def app_client(
    data_dir: Path, database_url: str | None = None, name: str = "Acme", **settings: object
) -> AsyncIterator[AppClient]:
    """The app on `data_dir` (and `database_url`: None for SQLite in the data directory),
    initialised as `devreg init` does, with an account made as `devreg account create`
    makes it; started (`app.startup()`, what ASGI lifespan's startup runs) and, afterwards,
    shut down."""
    config = app_config(data_dir, database_url, **settings)
    await init_data_dir(config)
    account = await create_account(config, name)
    app = DevregApp(config)
    await app.startup()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE_URL
        ) as client:
            made = AppClient(app, client, account, config.data_dir, database_url)
            try:
                yield made
            finally:
                await made.aclose()
    finally:
        await app.shutdown()
