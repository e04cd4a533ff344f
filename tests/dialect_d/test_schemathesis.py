"""Schemathesis against dialect D's operations in the document devreg publishes, on the real
server: every operation with `x-api-key` (the live key, and a smaller run with the test
key) on the plain listener, and the device's own operations (GET and PUT of its record,
renewal) on the client-auth listener with the certificate devreg issued it.

Path ids are drawn from real objects of the right kind (the account's, another mode's,
another account's) as well as generated, and some bodies from real ones (a device of a
real profile, a real CSR), so that operations really succeed, not only refuse. Every answer
must be documented: no 5xx, a documented status, content type and schema; a request that
breaks the schema must be refused."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from schemathesis import GenerationMode

from tests.dialect_d.helpers import (
    Account,
    field_ids,
    make_device,
    make_division,
    make_profile,
    new_account,
)
from tests.support.fuzz import (
    FUZZ_EXAMPLES,
    STRICT_CHECKS,
    Credentials,
    Exercise,
    Operation,
    backend_of,
    budget,
    operations_of,
    run_operation,
)
from tests.support.server import RunningServer, start_server

BASE = "/iot/api/v2"
DEVICE_SIDE = {"d-get-device", "d-update-device", "d-renew-certificate"}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def fuzz_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A server with its client-auth listener on."""
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    running = start_server(
        tmp_path_factory.mktemp(request.param) / "data",
        database_url=database_url,
        rate_limit=0,
        mtls=True,
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as made:  # kept-alive connections: a run is many requests
        yield made


def operation_id(operation: Operation) -> str:
    return str(operation.definition.raw["operationId"])


def renewal_csr(certificate_pem: str) -> str:
    """A request a device makes to renew: a new key, the certificate's subject and SAN."""
    current = x509.load_pem_x509_certificate(certificate_pem.encode())
    san = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(current.subject)
        .add_extension(san, critical=False)
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class Objects:
    """Real ids by the kind the path names, and real bodies by operation id."""

    ids: dict[str, list[str]] = field(default_factory=dict)
    bodies: dict[str, list[object]] = field(default_factory=dict)

    def add(self, kind: str, *ids: str) -> None:
        self.ids.setdefault(kind, []).extend(ids)

    def ids_for(self, operation: Operation) -> list[str]:
        # /iot/api/v2/<kind>/{id}...: division, device-profile, device, certificate
        return self.ids.get(operation.path.removeprefix(BASE + "/").split("/")[0], [])


def issue(client: Any, device_id: str) -> dict[str, Any]:
    issued = client.post(f"/device/{device_id}/certificate", json={"generate_key": True})
    assert issued.status_code == 201, issued.text
    body: dict[str, Any] = issued.json()
    return body


def make_key(client: Any, name: str) -> str:
    made = client.post("/api-key", json={"name": name})
    assert made.status_code == 201, made.text
    key_id: str = made.json()["key"]["id"]
    return key_id


def real_objects(account: Account, other: Account) -> Objects:
    """Divisions, profiles, devices and certificates of the account (live and test), and
    some of another account (which must stay out of reach)."""
    made = Objects()
    client = account.live
    default_division = client.get("/division").json()["records"][0]
    east = make_division(client, "East")
    sensor = make_profile(client, "Sensor", division_id=default_division["id"])
    meter = make_profile(client, "Meter", division_id=east["id"], fields=[("note", False)])
    serial = field_ids(sensor)["serial"]
    devices = [make_device(client, f"sensor-{n}", sensor, {"serial": f"S{n}"}) for n in range(3)]
    devices += [make_device(client, f"plain-{n}") for n in range(2)]
    devices.append(make_device(account.test, "test-mode"))
    foreign = make_device(other.live, "foreign")
    certificates = [issue(client, devices[0]["id"]), issue(client, devices[3]["id"])]
    made.add("division", default_division["id"], east["id"])
    made.add("division", other.live.get("/division").json()["records"][0]["id"])
    made.add("device-profile", sensor["id"], meter["id"], devices[3]["device_profile"]["id"])
    made.add("device-profile", foreign["device_profile"]["id"])
    made.add("device", *(device["id"] for device in devices), foreign["id"])
    made.add("certificate", *(c["certificate_id"] for c in certificates))
    made.add("certificate", issue(other.live, foreign["id"])["certificate_id"])
    # Keys to read, rotate and revoke: never the one fuzzing with (it would lock itself out)
    made.add("api-key", *(make_key(client, f"disposable {n}") for n in range(2)))
    made.add("api-key", make_key(account.test, "disposable test"), make_key(other.live, "foreign"))
    made.bodies = {
        "d-create-division": [{"name": "West"}],
        "d-create-profile": [{"name": "Gauge", "division_id": east["id"]}],
        "d-update-profile": [{"name": "Sensor 2"}, {"device_api_allow_read": False}],
        "d-create-device": [
            {
                "device_identifier": "made-by-fuzzing",
                "device_profile_id": sensor["id"],
                "division_id": default_division["id"],
                "fields": [{"id": serial, "value": "S9"}],
            },
            {"device_identifier": "plain-made-by-fuzzing"},
        ],
        "d-update-device": [
            {"fields": [{"id": serial, "value": "S10"}], "device_api_allow_write": False},
            {"device_identifier": "renamed", "fields": []},
        ],
        "d-issue-certificate": [
            {"generate_key": True},
            {"csr": renewal_csr(certificates[0]["pem"])},
        ],
        "d-revoke-certificate": [{"reason": "superseded"}],
        "d-create-api-key": [{"name": "made by fuzzing", "scope": "read", "expires_in_days": 1}],
        "d-rotate-api-key": [{"overlap_hours": 0.5}],
    }
    return made


@pytest.mark.parametrize("live", [True, False], ids=["live", "test"])
def test_published_spec_dialect_d_operations(
    fuzz_server: RunningServer, session: requests.Session, live: bool
) -> None:
    """Every dialect D operation, both generation modes, with the account's key."""
    account, other = new_account(fuzz_server, "Acme"), new_account(fuzz_server, "Globex")
    try:
        objects = real_objects(account, other)
        schema = schemathesis.openapi.from_url(fuzz_server.base_url + "/openapi.json")
        key = account.live_key if live else account.test_key
        credentials = Credentials(account.account_id, key, token="")
        operations = [op for op in operations_of(schema) if op.path.startswith(BASE + "/")]
        assert len(operations) == 29, [op.label for op in operations]
        # Disables and revocations late, deletes after them: the others need live objects;
        # restore last, once the delete has archived the device.
        late = ("d-disable-device", "d-revoke-certificate", "d-revoke-api-key")
        operations.sort(
            key=lambda op: 3 if operation_id(op) == "d-restore-device"
            else 2 if op.method == "delete" else operation_id(op) in late
        )  # fmt: skip
        examples = budget(25 if live else 8, backend_of(fuzz_server.database_url))
        seen: dict[str, Counter[int]] = {}
        for operation in operations:
            how = Exercise(
                fuzz_server.base_url,
                credentials.headers_for(operation),
                ids=objects.ids_for(operation),
                bodies=objects.bodies.get(operation_id(operation), []),
                checks=STRICT_CHECKS,
                call_options={"session": session},
            )
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                statuses = seen.setdefault(f"{operation_id(operation)} {mode.value}", Counter())
                run_operation(operation, mode, how, statuses, examples)
    finally:
        account.close()
        other.close()
    assert all(status < 500 for counts in seen.values() for status in counts), seen
    succeeded = {label.split()[0] for label, counts in seen.items() if any(s < 300 for s in counts)}
    if live and examples >= 25:
        # All but renewal, which only a device can ask for (over the client-auth listener).
        expected = {operation_id(op) for op in operations} - {"d-renew-certificate"}
    else:  # the test key's run, and the smaller PostgreSQL one
        expected = {"d-create-division", "d-list-divisions", "d-create-device", "d-list-devices"}
    assert expected <= succeeded, (sorted(expected - succeeded), seen)


def test_client_auth_listener_operations(
    fuzz_server: RunningServer, tmp_path: Path, session: requests.Session
) -> None:
    """The device's own operations over mutual TLS, with the device's certificate: its
    record read and replaced, its certificate renewed; other ids are refused (403)."""
    account = new_account(fuzz_server, "Acme")
    try:
        device = make_device(account.live, "self")
        neighbour = make_device(account.live, "neighbour")
        issued = issue(account.live, device["id"])
    finally:
        account.close()
    (tmp_path / "device.pem").write_text(issued["pem"])
    (tmp_path / "device.key").write_text(issued["private_key"])
    tls = {
        "cert": (str(tmp_path / "device.pem"), str(tmp_path / "device.key")),
        "verify": str(fuzz_server.data_dir / "ca.pem"),
    }
    schema = schemathesis.openapi.from_url(fuzz_server.base_url + "/openapi.json")
    operations = [op for op in operations_of(schema) if operation_id(op) in DEVICE_SIDE]
    assert len(operations) == 3, [op.label for op in operations]
    bodies: dict[str, list[object]] = {
        "d-update-device": [{"device_identifier": "self, renamed", "fields": []}],
        "d-renew-certificate": [{"csr": renewal_csr(issued["pem"])}],
    }
    examples = FUZZ_EXAMPLES or 25  # three operations: the same on both stores
    seen: dict[str, Counter[int]] = {}
    for operation in operations:
        how = Exercise(
            f"https://localhost:{fuzz_server.mtls_port}",
            {},  # the certificate is the credential
            ids=[device["id"], device["id"], neighbour["id"]],
            bodies=bodies.get(operation_id(operation), []),
            checks=STRICT_CHECKS,
            call_options={"session": session, **tls},
        )
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            statuses = seen.setdefault(f"{operation_id(operation)} {mode.value}", Counter())
            run_operation(operation, mode, how, statuses, examples)
    assert all(status < 500 for counts in seen.values() for status in counts), seen
    succeeded = {label.split()[0] for label, counts in seen.items() if any(s < 300 for s in counts)}
    assert succeeded == DEVICE_SIDE, seen
    assert any(403 in counts for counts in seen.values()), seen  # the neighbour's record
