"""Every credential against every endpoint (issue 6): the table in `credential_matrix.py`,
cell by cell, against real `devreg serve` processes (the plain listener, the client-auth
listener, the EST port, and two more servers on the same data: one whose `--trusted-proxy`
is another address, one trusting this machine),
with real tokens, keys, enrollment secrets and certificates from devreg's CA over real TLS.

Each cell checks the exact status and, for a refusal, the column's error envelope, that
the target's records read back unchanged through the API (for writes) and that not one row
of the database changed. A success on a write acts on a fresh target of the same kind, so
the shared targets stay as they were made. More tests keep the table honest: it covers
exactly the endpoints the app's router serves, no column mixes reads (GET) and writes (so a
read-only credential's cell has one outcome), and README.md shows exactly this table.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import itertools
import json
import secrets
import socket
import sqlite3
import ssl
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from devreg.auth.tokens import load_or_create_signing_key
from devreg.server.app import create_app
from devreg.server.config import Config
from devreg.storage import migrate_store
from tests.security.credential_matrix import (
    COLUMN_NOTES,
    COLUMNS,
    EST,
    README,
    ROWS,
    Column,
    D,
    Endpoint,
    Row,
    markdown,
    readme_block,
)
from tests.support.databases import fresh_database
from tests.support.server import RunningServer, create_account, login, run_cli, start_server
from tests.tls.helpers import devreg_ca, issue, nginx_escaped, other_ca

OTHER_PROXY = "10.9.9.9"  # the second server trusts this address, and no other
# Plain HTTP needs no TLS, but every httpx.Client builds a context unless given one.
PLAIN_TLS = ssl.create_default_context()


# --- who owns what --------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    account_id: str  # acc_<32 hex>
    live_key: str
    test_key: str
    live_token: str
    test_token: str

    def key(self, live: bool) -> str:
        return self.live_key if live else self.test_key

    def token(self, live: bool) -> str:
        return self.live_token if live else self.test_token


@dataclass(frozen=True)
class Profile:
    division_id: str
    profile_id: str
    field_id: str  # its one field, optional


@dataclass(frozen=True)
class Target:
    """A device a request is about, with the certificate devreg issued it."""

    account: Account
    live: bool
    profile: Profile
    device_id: str  # UUID, as dialect D shows it
    identifier: str
    reference: str
    cert_id: str
    cert: Path
    key: Path

    @property
    def f_id(self) -> str:
        return "dev_" + self.device_id.replace("-", "")


Transport = Literal["api", "direct", "proxy", "trusting", "device"]


@dataclass(frozen=True)
class Credential:
    """What a request carries, and how it travels: `api` to the plain listener (EST
    columns: the EST port, without a client certificate); `direct` to the plain listener
    for everything; `proxy` to the server trusting another proxy, `trusting` to the one
    trusting this machine (both for everything); `device` with the client
    certificate `cert` to the client-auth listener (EST columns: the EST port)."""

    transport: Transport
    headers: dict[str, str] = field(default_factory=dict)
    cert: tuple[Path, Path] | None = None


@dataclass(frozen=True)
class Case:
    target: Target
    credential: Credential
    holder: str | None = None  # the device whose certificate is presented


@dataclass(frozen=True)
class Request:
    path: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Refused:
    """The TLS handshake failed: no HTTP answer."""

    error: httpx.TransportError


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def device_name(device_id: str) -> x509.Name:
    """The subject devreg gives a device's certificates."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "devreg"),
            x509.NameAttribute(NameOID.COMMON_NAME, device_id),
        ]
    )


def device_csr(device_id: str) -> x509.CertificateSigningRequest:
    """A request, with a new key, for the subject and subjectAltName of `device_id`."""
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(device_name(device_id))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"urn:uuid:{device_id}")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )


def common_name(cert: x509.Certificate) -> str:
    (attribute,) = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attribute.value)


# --- the database, every row of it -----------------------------------------------------


# Columns the servers write on their own schedule, not as any request's effect: each process
# keeps its keys' last use in memory and flushes it once a minute (auth/access_gate.py).
UNWATCHED = frozenset({("api_keys", "last_used_at")})
# Tables written only by appending (the change log: no path of the service updates or
# deletes an entry, and `audit verify` would tell): their row count and highest seq show
# any change a request made. Reading every entry twice a cell made the matrix quadratic.
APPEND_ONLY = frozenset({"change_log"})


class Database:
    """A digest per table of every row, read beside the servers (SQLite: the data dir's
    file, read-only; PostgreSQL: the same database), without the UNWATCHED columns."""

    def __init__(self, data_dir: Path, database_url: str | None) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.sqlite: sqlite3.Connection | None = None
        self.postgres: Any = None
        if database_url is None:
            path = data_dir / "devreg.sqlite3"
            self.sqlite = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        else:
            import asyncpg

            self.loop = asyncio.new_event_loop()
            self.postgres = self.loop.run_until_complete(asyncpg.connect(database_url))

    def digest(self) -> dict[str, str]:
        tables: dict[str, list[tuple[Any, ...]]] = {}
        if self.sqlite is not None:
            names = self.sqlite.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            for (name,) in names.fetchall():
                cursor = self.sqlite.execute(_every_row(name))
                columns = [d[0] for d in cursor.description]
                tables[name] = watched(name, columns, cursor.fetchall())
        else:
            assert self.loop is not None
            tables = self.loop.run_until_complete(self._postgres_tables())
        return {
            name: hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()
            for name, rows in sorted(tables.items())
        }

    async def _postgres_tables(self) -> dict[str, list[tuple[Any, ...]]]:
        names = await self.postgres.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        tables: dict[str, list[tuple[Any, ...]]] = {}
        for (name,) in names:
            rows = await self.postgres.fetch(_every_row(name))
            columns = list(rows[0].keys()) if rows else []
            tables[name] = watched(name, columns, [tuple(r.values()) for r in rows])
        return tables

    def close(self) -> None:
        if self.sqlite is not None:
            self.sqlite.close()
        if self.loop is not None:
            self.loop.run_until_complete(self.postgres.close())
            self.loop.close()


def _every_row(table: str) -> str:
    if table in APPEND_ONLY:
        return f'SELECT count(*) AS entries, max(seq) AS last_seq FROM "{table}"'
    return f'SELECT * FROM "{table}"'


def watched(
    table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """The rows' values without the table's UNWATCHED columns (every cell reads every row
    twice: the tables without one are taken as they are)."""
    kept = [i for i, column in enumerate(columns) if (table, column) not in UNWATCHED]
    if len(kept) == len(columns):
        return list(rows)
    return [tuple(row[i] for i in kept) for row in rows]


# --- the world: servers, accounts, targets ---------------------------------------------


class World:
    def __init__(
        self,
        server: RunningServer,
        proxied: RunningServer,
        trusting: RunningServer,
        directory: Path,
        database: Database,
    ) -> None:
        """`server` has every listener; `proxied` trusts another address as its proxy and
        `trusting` this machine: both serve the same data and database on a plain port."""
        assert server.mtls_port is not None and server.est_port is not None
        self.server, self.directory, self.database = server, directory, database
        self.ca_file = server.data_dir / "ca.pem"
        self.ca = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
        self.plain = httpx.Client(base_url=server.base_url, timeout=30, verify=PLAIN_TLS)
        self.proxied = httpx.Client(base_url=proxied.base_url, timeout=30, verify=PLAIN_TLS)
        self.trusted = httpx.Client(base_url=trusting.base_url, timeout=30, verify=PLAIN_TLS)
        self.est_anonymous = self.tls_client(server.est_port)
        self.device_clients: dict[Path, tuple[httpx.Client, httpx.Client]] = {}
        self.serial = itertools.count()
        self.cases: dict[str, Case] = {}
        self.key_ids: dict[str, str] = {}  # a target device's key (its account and mode)
        self.made_once: dict[str, Any] = {}  # what several rows share
        self.owner = self.new_account("Acme")
        self.other = self.new_account("Globex")
        self.profile = self.new_profile(self.owner)
        self.other_profile = self.new_profile(self.other)
        self.live_target = self.new_target(self.owner, live=True)
        self.test_target = self.new_target(self.owner, live=False)
        self.signing_key = load_or_create_signing_key(server.data_dir)
        self.public = {
            endpoint: self.plain.get(request_for(self, endpoint, self.anonymous_case()).path)
            for endpoint in column_named("public").endpoints
        }

    def close(self) -> None:
        for client in (self.plain, self.proxied, self.trusted, self.est_anonymous):
            client.close()
        for mtls, est in self.device_clients.values():
            mtls.close()
            est.close()

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{next(self.serial)}"

    def anonymous_case(self) -> Case:
        return Case(self.live_target, Credential("api"))

    def tls_client(self, port: int, cert: tuple[Path, Path] | None = None) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if cert is not None:
            context.load_cert_chain(*cert)
        return httpx.Client(base_url=f"https://localhost:{port}", timeout=30, verify=context)

    # the owner's side, through the API

    def api(
        self, account: Account, live: bool, method: str, path: str, **kw: Any
    ) -> httpx.Response:
        return self.plain.request(method, D + path, headers={"x-api-key": account.key(live)}, **kw)

    def f_api(
        self, account: Account, live: bool, method: str, path: str, **kw: Any
    ) -> httpx.Response:
        return self.plain.request(method, path, headers=bearer(account.token(live)), **kw)

    def made(self, response: httpx.Response, status: int = 201) -> dict[str, Any]:
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json() if response.content else {}
        return body

    def new_account(self, name: str) -> Account:
        made = create_account(self.server, name)
        return Account(
            account_id=made["account_id"],
            live_key=made["live_key"],
            test_key=made["test_key"],
            live_token=login(self.server, made["account_id"], made["live_key"]),
            test_token=login(self.server, made["account_id"], made["test_key"]),
        )

    def new_profile(self, account: Account) -> Profile:
        division = self.made(
            self.api(account, True, "POST", "/division", json={"name": self.unique("division")})
        )
        profile = self.made(
            self.api(
                account,
                True,
                "POST",
                "/device-profile",
                json={
                    "name": self.unique("profile"),
                    "division_id": division["id"],
                    "fields": [{"name": "note", "mandatory": False}],
                    "device_api_allow_read": True,
                    "device_api_allow_write": True,
                    "device_api_allow_renew_certificate": True,
                },
            )
        )
        return Profile(division["id"], profile["id"], profile["fields"][0]["id"])

    def new_target(
        self,
        account: Account,
        *,
        live: bool = True,
        flags: dict[str, bool] | None = None,
        profile: Profile | None = None,
    ) -> Target:
        if profile is None:
            profile = self.profile if account is self.owner else self.other_profile
        identifier = self.unique("device")
        values = [{"id": profile.field_id, "value": "v0"}]
        device = self.made(
            self.api(
                account,
                live,
                "POST",
                "/device",
                json={
                    "division_id": profile.division_id,
                    "device_identifier": identifier,
                    "device_profile_id": profile.profile_id,
                    "fields": values,
                },
            )
        )
        device_id = device["id"]
        if flags:
            body = {"fields": values, **flags}
            self.made(self.api(account, live, "PUT", f"/device/{device_id}", json=body))
        issued = self.made(
            self.api(account, live, "POST", f"/device/{device_id}/certificate",
                     json={"generate_key": True})
        )  # fmt: skip
        cert, key = self.directory / f"{identifier}.pem", self.directory / f"{identifier}.key"
        cert.write_text(issued["pem"])
        key.write_text(issued["private_key"])
        key.chmod(0o600)
        reference = self.unique("reference")
        f_id = "dev_" + device_id.replace("-", "")
        self.made(
            self.f_api(
                account, live, "PATCH", f"/devices/{f_id}", json={"reference_id": reference}
            ),
            200,
        )
        return Target(
            account, live, profile, device_id, identifier, reference, issued["certificate_id"],
            cert, key,
        )  # fmt: skip

    def secret(self, target: Target) -> str:
        made = self.made(
            self.api(target.account, target.live, "POST", f"/device/{target.device_id}"
                     "/enrollment-secret")
        )  # fmt: skip
        secret: str = made["secret"]
        return secret

    def once(self, name: str, make: Callable[[], Any]) -> Any:
        """`make()`, called the first time only: set-up several rows (or cells) share."""
        if name not in self.made_once:
            self.made_once[name] = make()
        return self.made_once[name]

    def new_key(self, account: Account, live: bool, scope: str = "write") -> tuple[str, str]:
        """A new key of the account and mode, made with its own write key: (secret, id)."""
        made = self.made(
            self.api(account, live, "POST", "/api-key",
                     json={"name": self.unique("key"), "scope": scope})
        )  # fmt: skip
        return made["secret"], made["key"]["id"]

    def target_key(self, target: Target) -> str:
        """The id of the target's key, made for it the first time: the api-key columns'
        target. No cell revokes or rotates a key another cell uses: a success on those
        acts on a fresh target, so on a fresh key."""
        if target.device_id not in self.key_ids:
            self.key_ids[target.device_id] = self.new_key(target.account, target.live, "read")[1]
        return self.key_ids[target.device_id]

    def target(self, live: bool, fresh: bool) -> Target:
        if fresh:
            return self.new_target(self.owner, live=live)
        return self.live_target if live else self.test_target

    # tokens made here, from the owner's real one

    def claims(self) -> dict[str, Any]:
        claims: dict[str, Any] = jwt.decode(
            self.owner.live_token, options={"verify_signature": False}
        )
        return claims

    def token_signed(
        self, key: Any, algorithm: str, header: dict[str, Any] | None = None, **changes: Any
    ) -> str:
        """The owner's claims with `changes`, signed with `key`; the header names
        devreg's signing key as the real token does, unless `header` is given."""
        if header is None:
            header = {"kid": jwt.get_unverified_header(self.owner.live_token)["kid"]}
        with warnings.catch_warnings():  # HS512 with devreg's 32-byte key: that is the point
            warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
            return jwt.encode(
                {**self.claims(), **changes}, key, algorithm=algorithm, headers=header or None
            )

    def token_alg_none(self) -> str:
        header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        return f"{header}.{b64url(json.dumps(self.claims()).encode())}."

    def token_tampered(self) -> str:
        """The owner's test token with its payload switched to live, signature kept."""
        header, payload, signature = self.owner.test_token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert claims["live_mode"] is False
        claims["live_mode"] = True
        return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"

    # a case per row

    def case(self, row: Row, fresh: bool) -> Case:
        if fresh:
            return BUILDERS[row.key](self, True)
        if row.key not in self.cases:
            self.cases[row.key] = BUILDERS[row.key](self, False)
        return self.cases[row.key]

    # sending

    def client(self, credential: Credential, column: Column) -> httpx.Client:
        est = column.envelope == "EST"
        if credential.transport == "api":
            return self.est_anonymous if est else self.plain
        if credential.transport == "direct":
            return self.plain
        if credential.transport == "proxy":
            return self.proxied
        if credential.transport == "trusting":
            return self.trusted
        assert credential.cert is not None
        if credential.cert[0] not in self.device_clients:
            assert self.server.mtls_port is not None and self.server.est_port is not None
            self.device_clients[credential.cert[0]] = (
                self.tls_client(self.server.mtls_port, credential.cert),
                self.tls_client(self.server.est_port, credential.cert),
            )
        mtls, est_client = self.device_clients[credential.cert[0]]
        return est_client if est else mtls

    def send(self, case: Case, column: Column, endpoint: Endpoint) -> httpx.Response | Refused:
        request = request_for(self, endpoint, case)
        client = self.client(case.credential, column)
        try:
            return client.request(
                endpoint[0], request.path, json=request.json, content=request.content,
                params=request.params, headers={**case.credential.headers, **request.headers},
            )  # fmt: skip
        except httpx.TransportError as exc:
            return Refused(exc)

    def handshake_refused(self, credential: Credential, column: Column) -> bool:
        """Whether a TLS 1.2 handshake with the credential's certificate fails, on the port
        the column is sent to (with TLS 1.2 the server checks the client certificate inside
        the handshake; with 1.3 only after the client has finished its part)."""
        assert credential.cert is not None
        port = self.server.est_port if column.envelope == "EST" else self.server.mtls_port
        assert port is not None
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(*credential.cert)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            try:
                context.wrap_socket(raw, server_hostname="localhost").close()
            except (ssl.SSLError, ConnectionResetError):
                return True
        return False

    # what the owner sees of a target

    def view(self, target: Target) -> dict[str, Any]:
        def seen(response: httpx.Response) -> Any:
            if response.status_code == 200:
                return response.json()
            return response.status_code  # errors carry times: their status is what counts

        account, live, device = target.account, target.live, target.device_id
        return {
            "device": seen(self.api(account, live, "GET", f"/device/{device}")),
            "device (F)": seen(self.f_api(account, live, "GET", f"/devices/{target.f_id}")),
            "certificates": seen(self.api(account, live, "GET", f"/device/{device}/certificate")),
            "profile": seen(
                self.api(account, True, "GET", f"/device-profile/{target.profile.profile_id}")
            ),
            "divisions": seen(self.api(account, True, "GET", "/division")),
            "profiles": seen(self.api(account, True, "GET", "/device-profile")),
            "devices": others_unseen(
                seen(self.api(account, live, "GET", "/device", params={"limit": "100"})), device
            ),
        }


def others_unseen(listing: Any, target_id: str) -> Any:
    """The account's devices without the `last_seen` of those that are not the target:
    another device's own accepted call (an EST enrollment with its certificate, asked for
    the target and issued to the holder) moves its `last_seen`, and only that."""
    if isinstance(listing, dict):
        for record in listing["records"]:
            if record["id"] != target_id:
                record.pop("last_seen", None)
    return listing


def column_named(title: str) -> Column:
    (column,) = [column for column in COLUMNS if column.title == title]
    return column


# --- the rows: how each credential is made ---------------------------------------------

Builder = Callable[[World, bool], Case]


def header_row(headers: Callable[[World, Target], dict[str, str]], live: bool = True) -> Builder:
    def build(world: World, fresh: bool) -> Case:
        target = world.target(live, fresh)
        return Case(target, Credential("api", headers(world, target)))

    return build


def forwarded_row(header: str, transport: Transport) -> Builder:
    def build(world: World, fresh: bool) -> Case:
        target = world.target(True, fresh)
        escaped = nginx_escaped(target.cert.read_text())
        if header == "x-ssl-client-cert":
            headers = {header: escaped}
        else:
            subject = x509.load_pem_x509_certificate(target.cert.read_bytes()).subject
            headers = {header: f'Hash=00ff;Cert="{escaped}";Subject="{subject.rfc4514_string()}"'}
        if transport == "proxy":
            headers["x-forwarded-for"] = OTHER_PROXY  # claims to come from the trusted proxy
        return Case(target, Credential(transport, headers))

    return build


def device_case(target: Target, holder: Target | None = None) -> Case:
    """`holder`'s certificate (the target's own when None) against `target`."""
    holder = holder or target
    return Case(target, Credential("device", cert=(holder.cert, holder.key)), holder.device_id)


def own_certificate(prepare: Callable[[World, Target], None] = lambda w, t: None,
                    **flags: bool) -> Builder:  # fmt: skip
    def build(world: World, fresh: bool) -> Case:
        target = world.new_target(world.owner, flags=flags)
        prepare(world, target)
        return device_case(target)

    return build


def another_certificate(
    holder: Callable[[World], Target],
    headers: Callable[[Target], dict[str, str]] = lambda target: {},
) -> Builder:
    """Another device's certificate against the target (with `headers` about the target)."""

    def build(world: World, fresh: bool) -> Case:
        target = world.target(True, fresh)
        case = device_case(target, holder(world))
        return Case(
            target, Credential("device", headers(target), case.credential.cert), case.holder
        )

    return build


def stray_certificate(make: Callable[[World, Path], tuple[Path, Path]]) -> Builder:
    def build(world: World, fresh: bool) -> Case:
        cert = make(world, world.directory / world.unique("stray"))
        return Case(world.target(True, fresh), Credential("device", cert=cert))

    return build


def unregistered(world: World, directory: Path) -> tuple[Path, Path]:
    made = issue(devreg_ca(world.server.data_dir), directory, "unregistered")
    return made.cert_path, made.key_path


def expired(world: World, directory: Path) -> tuple[Path, Path]:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    made = issue(devreg_ca(world.server.data_dir), directory, "expired",
                 lifetime=dt.timedelta(days=1), now=past)  # fmt: skip
    return made.cert_path, made.key_path


def untrusted(world: World, directory: Path) -> tuple[Path, Path]:
    stranger, _ = other_ca(directory)
    made = issue(stranger, directory, "untrusted")
    return made.cert_path, made.key_path


def revoke(world: World, target: Target) -> None:
    world.made(
        world.api(target.account, True, "PUT", f"/certificate/{target.cert_id}/revoke",
                  json={"reason": "keyCompromise"}),
        200,
    )  # fmt: skip


def disable(world: World, target: Target) -> None:
    world.made(world.api(target.account, True, "PUT", f"/device/{target.device_id}/disable"), 200)


def delete(world: World, target: Target) -> None:
    world.made(world.api(target.account, True, "DELETE", f"/device/{target.device_id}"), 200)


def used_secret(world: World, target: Target) -> str:
    secret = world.secret(target)
    body = base64.b64encode(device_csr(target.device_id).public_bytes(serialization.Encoding.DER))
    headers = {
        "content-type": "application/pkcs10",
        "authorization": basic(target.device_id, secret),
    }
    used = world.est_anonymous.post(EST + "simpleenroll", content=body, headers=headers)
    assert used.status_code == 200, used.text
    return secret


def secret_of_inactive(then: Callable[[World, Target], None]) -> Builder:
    """The target's own secret, made before the target is disabled or deleted."""

    def build(world: World, fresh: bool) -> Case:
        target = world.new_target(world.owner)
        secret = world.secret(target)
        then(world, target)
        return Case(target, Credential("api", {"authorization": basic(target.device_id, secret)}))

    return build


@dataclass(frozen=True)
class OwnerKey:
    """A live key of the owner's and a token made from it at `/login`."""

    secret: str
    key_id: str
    token: str


def owner_key(world: World, scope: str = "write") -> OwnerKey:
    secret, key_id = world.new_key(world.owner, True, scope)
    return OwnerKey(secret, key_id, login(world.server, world.owner.account_id, secret))


def key_status(world: World, key: OwnerKey) -> str:
    shown = world.made(world.api(world.owner, True, "GET", f"/api-key/{key.key_id}"), 200)
    status: str = shown["status"]
    return status


def read_key(world: World) -> OwnerKey:
    return world.once("read key", lambda: owner_key(world, "read"))


def revoked_key(world: World) -> OwnerKey:
    def make() -> OwnerKey:
        key = owner_key(world)
        world.made(world.api(world.owner, True, "PUT", f"/api-key/{key.key_id}/revoke"), 200)
        assert key_status(world, key) == "REVOKED"
        return key

    return world.once("revoked key", make)


def expired_key(world: World) -> OwnerKey:
    """Rotated with an overlap of 36 ms, then waited for: expired, not revoked."""

    def make() -> OwnerKey:
        key = owner_key(world)
        rotated = world.api(world.owner, True, "POST", f"/api-key/{key.key_id}/rotate",
                            json={"overlap_hours": 0.00001})  # fmt: skip
        world.made(rotated)
        time.sleep(0.1)
        assert key_status(world, key) == "EXPIRED"
        return key

    return world.once("expired key", make)


def limited_key(world: World, inside: bool) -> OwnerKey:
    """A live write key of the owner limited to the targets' division (`inside`) or to
    another division of the owner's, made with the owner's key, and a token of it."""

    def make() -> OwnerKey:
        if inside:
            division = world.profile.division_id
        else:
            made = world.api(world.owner, True, "POST", "/division",
                             json={"name": world.unique("division")})  # fmt: skip
            division = world.made(made)["id"]
        key = world.made(
            world.api(world.owner, True, "POST", "/api-key",
                      json={"name": world.unique("key"), "division_ids": [division]})
        )  # fmt: skip
        assert key["key"]["division_ids"] == [division], key
        secret, key_id = key["secret"], key["key"]["id"]
        return OwnerKey(secret, key_id, login(world.server, world.owner.account_id, secret))

    return world.once(f"limited key {inside}", make)


@dataclass(frozen=True)
class DisabledAccount:
    """An account with a live device (its certificate, an enrollment secret and the
    target's key made for it), keys and tokens, all made before it was disabled."""

    account: Account
    target: Target
    secret: str


def disabled_account(world: World) -> DisabledAccount:
    def make() -> DisabledAccount:
        account = world.new_account("Initech")
        target = world.new_target(account, profile=world.new_profile(account))
        secret = world.secret(target)
        world.target_key(target)
        done = run_cli(world.server.env, "account", "disable", account.account_id, "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["status"] == "DISABLED", done.stdout
        return DisabledAccount(account, target, secret)

    return world.once("disabled account", make)


def disabled_row(credential: Callable[[DisabledAccount], Credential]) -> Builder:
    """A credential of the disabled account about its device (no write succeeds: no fresh
    target is ever needed)."""

    def build(world: World, fresh: bool) -> Case:
        made = disabled_account(world)
        return Case(made.target, credential(made), made.target.device_id)

    return build


BUILDERS: dict[str, Builder] = {
    "none": header_row(lambda w, t: {}),
    "bearer-garbage": header_row(lambda w, t: bearer("garbage")),
    "basic-not-base64": header_row(lambda w, t: {"authorization": "Basic !!not base64!!"}),
    "wrong-scheme": header_row(
        lambda w, t: {"authorization": f'Digest username="{w.owner.account_id}", response="00"'}
    ),
    "api-key-garbage": header_row(lambda w, t: {"x-api-key": "sk_live_garbage"}),
    "token-expired": header_row(
        lambda w, t: bearer(
            w.token_signed(
                w.signing_key, "HS256", iat=int(time.time()) - 7200, exp=int(time.time()) - 3600
            )
        )
    ),
    "token-other-key": header_row(
        lambda w, t: bearer(w.token_signed(secrets.token_bytes(32), "HS256"))
    ),
    "token-no-kid": header_row(lambda w, t: bearer(w.token_signed(w.signing_key, "HS256", {}))),
    "token-other-kid": header_row(
        lambda w, t: bearer(w.token_signed(w.signing_key, "HS256", {"kid": "0" * 16}))
    ),
    "token-long-lived": header_row(
        lambda w, t: bearer(
            w.token_signed(
                w.signing_key,
                "HS256",
                iat=int(time.time()),
                exp=int(time.time()) + 30 * 365 * 86400,
            )
        )
    ),
    "token-no-account": header_row(
        lambda w, t: bearer(w.token_signed(w.signing_key, "HS256", sub="acc_" + "ab" * 16))
    ),
    "token-alg-none": header_row(lambda w, t: bearer(w.token_alg_none())),
    "token-hs512": header_row(lambda w, t: bearer(w.token_signed(w.signing_key, "HS512"))),
    "token-rs256": header_row(
        lambda w, t: bearer(
            w.token_signed(rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")
        )
    ),
    "token-tampered": header_row(lambda w, t: bearer(w.token_tampered())),
    "basic-owner": header_row(
        lambda w, t: {"authorization": basic(w.owner.account_id, w.owner.live_key)}
    ),
    "token-owner": header_row(lambda w, t: bearer(w.owner.live_token)),
    "key-owner": header_row(lambda w, t: {"x-api-key": w.owner.live_key}),
    "key-as-bearer": header_row(lambda w, t: bearer(w.owner.live_key)),
    "token-as-key": header_row(lambda w, t: {"x-api-key": w.owner.live_token}),
    "token-other-account": header_row(lambda w, t: bearer(w.other.live_token)),
    "key-other-account": header_row(lambda w, t: {"x-api-key": w.other.live_key}),
    "token-test-on-live": header_row(lambda w, t: bearer(w.owner.test_token)),
    "token-live-on-test": header_row(lambda w, t: bearer(w.owner.live_token), live=False),
    "key-test-on-live": header_row(lambda w, t: {"x-api-key": w.owner.test_key}),
    "key-live-on-test": header_row(lambda w, t: {"x-api-key": w.owner.live_key}, live=False),
    "secret-own": header_row(lambda w, t: {"authorization": basic(t.device_id, w.secret(t))}),
    "secret-other-device": header_row(
        lambda w, t: {"authorization": basic(t.device_id, w.secret(w.new_target(w.owner)))}
    ),
    "secret-used": header_row(
        lambda w, t: {"authorization": basic(t.device_id, used_secret(w, t))}
    ),
    "secret-disabled": secret_of_inactive(disable),
    "secret-deleted": secret_of_inactive(delete),
    "xssl-trusted-proxy": forwarded_row("x-ssl-client-cert", "trusting"),
    "xssl-no-proxy": forwarded_row("x-ssl-client-cert", "direct"),
    "xfcc-no-proxy": forwarded_row("x-forwarded-client-cert", "direct"),
    "xssl-other-proxy": forwarded_row("x-ssl-client-cert", "proxy"),
    "xfcc-other-proxy": forwarded_row("x-forwarded-client-cert", "proxy"),
    "cert-own": own_certificate(),
    "cert-other-device": another_certificate(lambda w: w.new_target(w.owner)),
    "cert-other-account": another_certificate(lambda w: w.new_target(w.other)),
    "cert-test-device": another_certificate(lambda w: w.new_target(w.owner, live=False)),
    "cert-other-forwarding": another_certificate(
        lambda w: w.new_target(w.owner),
        lambda t: {"x-ssl-client-cert": nginx_escaped(t.cert.read_text())},
    ),
    "cert-revoked": own_certificate(revoke),
    "cert-disabled": own_certificate(disable),
    "cert-deleted": own_certificate(delete),
    "cert-read-off": own_certificate(device_api_allow_read=False),
    "cert-write-off": own_certificate(device_api_allow_write=False),
    "cert-renew-off": own_certificate(device_api_allow_renew_certificate=False),
    "cert-unregistered": stray_certificate(unregistered),
    "key-read": header_row(lambda w, t: {"x-api-key": read_key(w).secret}),
    "token-read": header_row(lambda w, t: bearer(read_key(w).token)),
    "key-limited": header_row(lambda w, t: {"x-api-key": limited_key(w, False).secret}),
    "token-limited": header_row(lambda w, t: bearer(limited_key(w, False).token)),
    "key-limited-inside": header_row(lambda w, t: {"x-api-key": limited_key(w, True).secret}),
    "token-limited-inside": header_row(lambda w, t: bearer(limited_key(w, True).token)),
    "key-revoked": header_row(lambda w, t: {"x-api-key": revoked_key(w).secret}),
    "token-of-revoked-key": header_row(lambda w, t: bearer(revoked_key(w).token)),
    "key-expired": header_row(lambda w, t: {"x-api-key": expired_key(w).secret}),
    "token-of-expired-key": header_row(lambda w, t: bearer(expired_key(w).token)),
    "key-disabled-account": disabled_row(
        lambda d: Credential("api", {"x-api-key": d.account.live_key})
    ),
    "token-disabled-account": disabled_row(
        lambda d: Credential("api", bearer(d.account.live_token))
    ),
    "basic-disabled-account": disabled_row(
        lambda d: Credential(
            "api", {"authorization": basic(d.account.account_id, d.account.live_key)}
        )
    ),
    "cert-disabled-account": disabled_row(
        lambda d: Credential("device", cert=(d.target.cert, d.target.key))
    ),
    "secret-disabled-account": disabled_row(
        lambda d: Credential("api", {"authorization": basic(d.target.device_id, d.secret)})
    ),
    "cert-expired": stray_certificate(expired),
    "cert-untrusted-ca": stray_certificate(untrusted),
}


# --- the endpoints: one well-formed request each, about the case's target ---------------


def est_body(target: Target) -> Request:
    csr = device_csr(target.device_id).public_bytes(serialization.Encoding.DER)
    return Request(
        EST + "simpleenroll", content=base64.b64encode(csr),
        headers={"content-type": "application/pkcs10"},
    )  # fmt: skip


def request_for(world: World, endpoint: Endpoint, case: Case) -> Request:
    t = case.target
    method, path = endpoint
    device = f"{D}/device/{t.device_id}"
    flags = {
        "device_api_allow_read": True,
        "device_api_allow_write": True,
        "device_api_allow_renew_certificate": True,
    }
    made: dict[Endpoint, Callable[[], Request]] = {
        ("GET", "/login"): lambda: Request("/login"),
        ("POST", "/devices"): lambda: Request(
            "/devices", json={"reference_id": world.unique("reference")}
        ),
        ("GET", "/devices"): lambda: Request("/devices", params={"reference_id": t.reference}),
        ("GET", "/devices/{id}"): lambda: Request(f"/devices/{t.f_id}"),
        ("PATCH", "/devices/{id}"): lambda: Request(
            f"/devices/{t.f_id}", json={"reference_id": world.unique("reference")}
        ),
        ("DELETE", "/devices/{id}"): lambda: Request(f"/devices/{t.f_id}"),
        ("POST", D + "/division"): lambda: Request(
            D + "/division", json={"name": world.unique("division")}
        ),
        ("GET", D + "/division"): lambda: Request(D + "/division"),
        ("GET", D + "/device-profile"): lambda: Request(D + "/device-profile"),
        ("GET", D + "/device"): lambda: Request(
            D + "/device", params={"device_identifier": t.identifier}
        ),
        ("GET", D + "/division/{id}"): lambda: Request(f"{D}/division/{t.profile.division_id}"),
        ("POST", D + "/device-profile"): lambda: Request(
            D + "/device-profile",
            json={
                "name": world.unique("profile"),
                "division_id": t.profile.division_id,
                "fields": [{"name": "note", "mandatory": False}],
                **flags,
            },
        ),
        ("GET", D + "/device-profile/{id}"): lambda: Request(
            f"{D}/device-profile/{t.profile.profile_id}"
        ),
        ("POST", D + "/device"): lambda: Request(
            D + "/device",
            json={
                "division_id": t.profile.division_id,
                "device_identifier": world.unique("device"),
                "device_profile_id": t.profile.profile_id,
                "fields": [{"id": t.profile.field_id, "value": "new"}],
            },
        ),
        ("PUT", D + "/device-profile/{id}"): lambda: Request(
            f"{D}/device-profile/{t.profile.profile_id}", json={"name": world.unique("profile")}
        ),
        ("DELETE", D + "/device/{id}"): lambda: Request(device),
        ("PUT", D + "/device/{id}/disable"): lambda: Request(device + "/disable"),
        ("PUT", D + "/device/{id}/enable"): lambda: Request(device + "/enable"),
        ("PUT", D + "/device/{id}/restore"): lambda: Request(device + "/restore"),
        ("POST", D + "/device/{id}/certificate"): lambda: Request(
            device + "/certificate", json={"generate_key": True}
        ),
        ("GET", D + "/device/{id}/certificate"): lambda: Request(device + "/certificate"),
        ("GET", D + "/device/{id}/history"): lambda: Request(device + "/history"),
        ("GET", D + "/audit-log"): lambda: Request(
            D + "/audit-log", params={"object_id": t.profile.division_id}
        ),
        ("POST", D + "/device/{id}/enrollment-secret"): lambda: Request(
            device + "/enrollment-secret"
        ),
        ("PUT", D + "/certificate/{id}/revoke"): lambda: Request(
            f"{D}/certificate/{t.cert_id}/revoke", json={"reason": "superseded"}
        ),
        ("PUT", D + "/device/{id}/certificate/revoke"): lambda: Request(
            device + "/certificate/revoke", json={"reason": "keyCompromise"}
        ),
        ("PUT", D + "/device/{id}/enrollment-secret/revoke"): lambda: Request(
            device + "/enrollment-secret/revoke"
        ),
        ("GET", D + "/device/{id}"): lambda: Request(device),
        ("PUT", D + "/device/{id}"): lambda: Request(
            device, json={"fields": [{"id": t.profile.field_id, "value": world.unique("value")}]}
        ),
        ("POST", D + "/device/{id}/renew"): lambda: Request(
            device + "/renew",
            json={"csr": device_csr(t.device_id).public_bytes(serialization.Encoding.PEM).decode()},
        ),
        ("GET", EST + "cacerts"): lambda: Request(EST + "cacerts"),
        ("POST", EST + "simpleenroll"): lambda: est_body(t),
        ("POST", EST + "simplereenroll"): lambda: Request(
            EST + "simplereenroll", content=est_body(t).content, headers=est_body(t).headers
        ),
        ("GET", "/docs/static/{name}"): lambda: Request("/docs/static/swagger-ui.css"),
        ("GET", D + "/api-key"): lambda: Request(D + "/api-key", params={"limit": "1000"}),
        ("POST", D + "/api-key"): lambda: Request(
            D + "/api-key", json={"name": world.unique("key"), "scope": "read"}
        ),
        ("GET", D + "/api-key/{id}"): lambda: Request(f"{D}/api-key/{world.key_ids[t.device_id]}"),
        ("PUT", D + "/api-key/{id}/revoke"): lambda: Request(
            f"{D}/api-key/{world.key_ids[t.device_id]}/revoke"
        ),
        ("POST", D + "/api-key/{id}/rotate"): lambda: Request(
            f"{D}/api-key/{world.key_ids[t.device_id]}/rotate", json={"overlap_hours": 0}
        ),
    }
    if endpoint in made:
        return made[endpoint]()
    assert endpoint in column_named("public").endpoints, endpoint
    assert method == "GET" and "{" not in path
    return Request(path)


# --- what a success looks like ------------------------------------------------------------

RESTORE: Endpoint = ("PUT", D + "/device/{id}/restore")
SUCCESS: dict[Endpoint, int] = {
    ("POST", "/devices"): 201,
    ("DELETE", "/devices/{id}"): 202,
    ("POST", D + "/division"): 201,
    ("POST", D + "/device-profile"): 201,
    ("POST", D + "/device"): 201,
    ("PUT", D + "/device/{id}"): 201,  # seed 003's status for the update
    ("POST", D + "/device/{id}/certificate"): 201,
    ("POST", D + "/device/{id}/enrollment-secret"): 201,
    ("POST", D + "/api-key"): 201,
    ("POST", D + "/api-key/{id}/rotate"): 201,
}


def ids_of(response: httpx.Response, key: str) -> list[str]:
    return [record["id"] for record in response.json()[key]]


def issued_to(response: httpx.Response) -> str:
    """The device named by the one certificate in an EST answer."""
    assert response.headers["content-type"].startswith("application/pkcs7-mime")
    (cert,) = pkcs7.load_der_pkcs7_certificates(base64.b64decode(response.content))
    return common_name(cert)


def check_success(world: World, case: Case, endpoint: Endpoint, response: httpx.Response,
                  own: bool) -> None:  # fmt: skip
    """What the caller got is the target's (ok) or only its own (own)."""
    t = case.target
    json_type = "json" in response.headers.get("content-type", "")
    body: Any = response.json() if json_type and response.content else None
    method, path = endpoint
    if endpoint == ("GET", "/login"):
        assert body["live_mode"] is t.live and body["expires_in"] == 3600
    elif endpoint == ("POST", "/devices"):
        mine = (body["account_id"], body["live_mode"]) == (t.account.account_id, t.live)
        assert mine is not own, body
    elif endpoint == ("GET", "/devices"):
        assert [d["id"] for d in body["data"]] == ([] if own else [t.f_id]), body
    elif path == "/devices/{id}" and method != "DELETE":
        assert body["id"] == t.f_id
    elif endpoint == ("GET", D + "/division"):
        assert (t.profile.division_id in ids_of(response, "records")) is not own
    elif endpoint == ("GET", D + "/device-profile"):
        assert (t.profile.profile_id in ids_of(response, "records")) is not own
    elif endpoint == ("GET", D + "/device"):
        assert ids_of(response, "records") == ([] if own else [t.device_id])
    elif endpoint == ("GET", D + "/division/{id}"):
        assert body["id"] == t.profile.division_id
    elif endpoint in {("POST", D + "/device-profile"), ("POST", D + "/device")}:
        assert body["division"]["id"] == t.profile.division_id
    elif endpoint == ("GET", D + "/device-profile/{id}"):
        assert body["id"] == t.profile.profile_id
    elif endpoint == ("GET", D + "/device/{id}/certificate"):
        assert t.cert_id in [c["certificate_id"] for c in body["records"]]
    elif endpoint == ("GET", D + "/device/{id}/history"):
        assert body["total"] >= 1 and body["records"][-1]["action"] == "device.create", body
        assert {r["after"]["id"] for r in body["records"]} == {t.device_id}, body
    elif endpoint == ("GET", D + "/audit-log"):
        created = [e["object_id"] for e in body["records"] if e["action"] == "division.create"]
        assert created == ([] if own else [t.profile.division_id]), body
    elif endpoint == ("PUT", D + "/certificate/{id}/revoke"):
        assert (body["certificate_id"], body["status"]) == (t.cert_id, "REVOKED")
    elif endpoint == ("PUT", D + "/device/{id}/certificate/revoke"):
        assert t.cert_id in [c["certificate_id"] for c in body["records"]], body
    elif endpoint == ("PUT", D + "/device/{id}/enrollment-secret/revoke"):
        assert body == {"revoked": 0}  # a fresh target has no secret outstanding
    elif endpoint in {("GET", D + "/device/{id}"), ("PUT", D + "/device/{id}")}:
        assert body["id"] == t.device_id
    elif endpoint == RESTORE:
        assert (body["id"], body["status"]) == (t.device_id, "ACTIVE"), body
    elif endpoint == ("POST", D + "/device/{id}/renew"):
        assert body["status"] == "AUTO_APPROVED"
        assert common_name(x509.load_pem_x509_certificate(body["pem"].encode())) == t.device_id
    elif endpoint == ("GET", D + "/api-key"):
        assert (world.key_ids[t.device_id] in ids_of(response, "records")) is not own, body
    elif endpoint == ("POST", D + "/api-key"):
        new = body["key"]
        assert body["secret"].startswith("sk_") and new["scope"] == "read", body
        # the target's account and mode hold the new key (ok), or not (own)
        seen = world.api(t.account, t.live, "GET", f"/api-key/{new['id']}").status_code
        assert seen == (400 if own else 200), (seen, body)
    elif endpoint == ("GET", D + "/api-key/{id}"):
        assert body["id"] == world.key_ids[t.device_id], body
    elif endpoint == ("PUT", D + "/api-key/{id}/revoke"):
        assert (body["id"], body["status"]) == (world.key_ids[t.device_id], "REVOKED"), body
    elif endpoint == ("POST", D + "/api-key/{id}/rotate"):
        old = world.key_ids[t.device_id]
        assert body["replaces"] == old and body["key"]["rotated_from"] == old, body
        after = world.made(world.api(t.account, t.live, "GET", f"/api-key/{old}"), 200)
        assert after["status"] == "REVOKED", after  # overlap 0
    elif endpoint == ("GET", EST + "cacerts"):
        (cert,) = pkcs7.load_der_pkcs7_certificates(base64.b64decode(response.content))
        assert cert == world.ca
    elif path.startswith(EST) and own:
        # named after the device that presented its certificate, not the one asked for
        assert case.holder is not None and case.holder != t.device_id
        assert issued_to(response) == case.holder
    elif path.startswith(EST):
        assert issued_to(response) == t.device_id
    elif path in {"/crl.pem", "/crl.der"}:
        reference = world.public[endpoint]
        assert response.headers["content-type"] == reference.headers["content-type"]
        crl = (
            x509.load_pem_x509_crl(response.content) if path.endswith("pem")
            else x509.load_der_x509_crl(response.content)
        )  # fmt: skip
        assert crl.issuer == world.ca.subject
    elif endpoint in world.public:
        reference = world.public[endpoint]
        assert response.headers["content-type"] == reference.headers["content-type"]
        assert response.content == reference.content


# --- what a refusal looks like ---------------------------------------------------------------

F_CODES = {  # status: (type, code)
    403: ("invalid_request", "access_denied"),
    404: ("invalid_request", "not_found"),
    422: ("api_error", "account_disabled"),
}
D_CODES = {400: "entity_not_found", 401: "invalid_api_key", 403: "access_denied"}
F_ERROR_KEYS = {"object", "live_mode", "context", "type", "code", "message", "time_created"}


def check_refusal(column: Column, response: httpx.Response, status: int) -> None:
    content_type = response.headers.get("content-type", "")
    if column.envelope == "F":
        body = response.json()
        assert set(body) == F_ERROR_KEYS, body
        assert (body["object"], body["type"], body["code"]) == ("error", *F_CODES[status]), body
        if status == 422:
            assert body["message"] == "Your account is disabled", body
        assert isinstance(body["message"], str) and body["message"], body
        assert isinstance(body["live_mode"], bool), body
        assert body["context"] == "api" or body["context"].startswith("api."), body
    elif column.envelope == "D":
        body = response.json()
        assert set(body) == {"errors"} and len(body["errors"]) == 1, body
        (error,) = body["errors"]
        assert set(error) == {"code", "message"} and error["code"] == D_CODES[status], body
        assert isinstance(error["message"], str) and error["message"], body
    else:
        assert column.envelope == "EST", (column.title, status, response.text)
        assert content_type.startswith("text/plain"), content_type
        assert response.text.strip()
        if status == 401:
            assert response.headers["www-authenticate"].startswith("Basic ")
    if column.envelope != "EST":
        assert content_type.startswith("application/json"), content_type


# --- the servers --------------------------------------------------------------------------


@contextlib.contextmanager
def world_on(base: Path, database_url: str | None) -> Iterator[World]:
    with contextlib.ExitStack() as stack:

        def serve(**options: Any) -> RunningServer:
            # Every cell's success issues or mints certificates, some for shared devices:
            # the issuance limits are tested in test_issuance_abuse.py, not here.
            server = start_server(
                base / "data", database_url=database_url, rate_limit=0, issuance_rate=0,
                max_active_certificates=10_000, **options,
            )  # fmt: skip
            stack.callback(server.stop)
            return server

        server = serve(mtls=True, est=True)
        # The same data and database, believing forwarded certificates from another address
        # only, or from this machine.
        proxied = serve(args=["--trusted-proxy", OTHER_PROXY])
        trusting = serve(args=["--trusted-proxy", "127.0.0.1"])
        database = Database(base / "data", database_url)
        stack.callback(database.close)
        made = World(server, proxied, trusting, base, database)
        stack.callback(made.close)
        yield made


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world_on(tmp_path_factory.mktemp("matrix-sqlite"), None) as made:
        yield made


@pytest.fixture(scope="module")
def postgres_world(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[World]:
    # A database of its own: every cell reads every row twice, and the session's database
    # holds what every earlier test wrote (in CI, that made the matrix take most of an hour).
    with (
        fresh_database(postgres_url, "devreg_matrix_") as url,
        world_on(tmp_path_factory.mktemp("matrix-postgres"), url) as made,
    ):
        yield made


def cells(rows: tuple[Row, ...]) -> list[Any]:
    return [
        pytest.param(row, column, endpoint, id=f"{row.key}:{endpoint[0]} {endpoint[1]}")
        for row in rows
        for column in COLUMNS
        for endpoint in column.endpoints
    ]


@pytest.mark.parametrize(("row", "column", "endpoint"), cells(ROWS))
def test_cell(world: World, row: Row, column: Column, endpoint: Endpoint) -> None:
    check_cell(world, row, column, endpoint)


# Refused before devreg looks anything up (the token's signature and claims, the TLS
# handshake): the same on every store, so PostgreSQL runs the other rows only.
STORE_FREE = frozenset(
    {"bearer-garbage", "basic-not-base64", "wrong-scheme", "token-expired", "token-other-key",
     "token-alg-none", "token-hs512", "token-rs256", "token-tampered", "key-as-bearer",
     "token-no-kid", "token-other-kid", "token-long-lived",
     "cert-expired", "cert-untrusted-ca"}
)  # fmt: skip


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("row", "column", "endpoint"), cells(tuple(r for r in ROWS if r.key not in STORE_FREE))
)
def test_cell_on_postgres(
    postgres_world: World, row: Row, column: Column, endpoint: Endpoint
) -> None:
    check_cell(postgres_world, row, column, endpoint)


def check_cell(world: World, row: Row, column: Column, endpoint: Endpoint) -> None:
    """The exact status; for a success, that it is the target's (or the caller's own); for a
    refusal, the column's envelope, the target's records and every table unchanged."""
    expected = row.outcome(column)
    writes = endpoint[0] != "GET"
    # A success that changes its target gets a target of its own.
    case = world.case(row, fresh=expected == "ok" and writes)
    if "/api-key" in endpoint[1]:
        world.target_key(case.target)  # made now, not inside the cell
    if endpoint == RESTORE and expected == "ok":  # what a restore succeeds on
        world.made(world.api(case.target.account, case.target.live, "DELETE",
                             f"/device/{case.target.device_id}"), 200)  # fmt: skip
    target_before = world.view(case.target) if writes and expected != "ok" else None
    database_before = world.database.digest() if expected not in {"ok", "own"} else None

    answer = world.send(case, column, endpoint)

    if expected == "TLS":
        assert isinstance(answer, Refused), f"TLS accepted: {answer!r}"
        assert world.handshake_refused(case.credential, column), "refused after the handshake"
    else:
        assert isinstance(answer, httpx.Response), f"no answer: {answer!r}"
        if expected in {"ok", "own"}:
            success = SUCCESS.get(endpoint, 200)
            assert answer.status_code == success, (answer.status_code, answer.text[:500])
            check_success(world, case, endpoint, answer, own=expected == "own")
        else:
            assert answer.status_code == int(expected), (answer.status_code, answer.text[:500])
            check_refusal(column, answer, int(expected))
    if target_before is not None:
        assert world.view(case.target) == target_before, "the target changed"
    if database_before is not None:
        after = world.database.digest()
        changed = [table for table in after if after[table] != database_before.get(table)]
        assert not changed, f"a refused request changed {changed}"


# --- the table covers the app, and README.md shows it -------------------------------------------


async def test_the_matrix_covers_every_endpoint_the_app_serves(tmp_path: Path) -> None:
    """A new route without a column fails here: give it its cells first."""
    await migrate_store(None, tmp_path)
    app = create_app(Config(data_dir=tmp_path, access_log=False))
    await app.startup()
    try:
        served = app.router.endpoints()
    finally:
        await app.shutdown()
    covered = [endpoint for column in COLUMNS for endpoint in column.endpoints]
    assert len(covered) == len(set(covered)), "an endpoint in two columns"
    assert sorted(covered) == sorted(served)


def test_the_checks_see_a_change(world: World) -> None:
    """The "nothing changed" checks are not blind: one write shows in both; and the
    handshake probe of the TLS rows lets a trusted certificate through."""
    target = world.new_target(world.owner)
    view, digest = world.view(target), world.database.digest()
    changed = world.f_api(world.owner, True, "PATCH", f"/devices/{target.f_id}",
                          json={"reference_id": world.unique("reference")})  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert world.view(target) != view
    assert world.database.digest()["devices"] != digest["devices"]
    # and the handshake probe refuses only what it should
    device = Credential("device", cert=(target.cert, target.key))
    for column in (column_named("D GET"), column_named("enroll")):
        assert not world.handshake_refused(device, column)


def test_the_forged_tokens_differ_from_a_good_one_only_in_what_they_forge(world: World) -> None:
    """The same claims, signed HS256 with devreg's key here, are accepted: so each forged
    row is refused for its forgery (expiry, key, algorithm, edit), not for its making."""
    now = int(time.time())
    token = world.token_signed(world.signing_key, "HS256", iat=now, exp=now + 60)
    answer = world.plain.get("/devices/" + world.live_target.f_id, headers=bearer(token))
    assert answer.status_code == 200, answer.text


def test_no_column_mixes_reads_and_writes() -> None:
    """A read-only credential may read and not write: each column is one or the other, so
    its cell has one outcome. A new endpoint goes in a column of its own kind."""
    for column in COLUMNS:
        kinds = {"read" if method == "GET" else "write" for method, _ in column.endpoints}
        assert len(kinds) == 1, (column.title, column.endpoints)
    assert list(COLUMN_NOTES) == [column.title for column in COLUMNS]


def test_every_row_has_a_builder_and_every_cell_an_outcome() -> None:
    assert sorted(row.key for row in ROWS) == sorted(BUILDERS)
    for row in ROWS:
        assert len(row.outcomes) == len(COLUMNS)


def test_the_readme_shows_this_table() -> None:
    """Regenerate with `python -m tests.security.credential_matrix --write`."""
    assert readme_block(README.read_text()) == markdown()
