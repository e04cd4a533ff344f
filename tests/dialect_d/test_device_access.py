"""Devices acting on their own record with the certificate devreg issued them: over the
client-auth listener, and behind a real nginx that terminates mutual TLS (proxy mode).
Seed 003's curl example is run as written, with the `curl` binary."""

from __future__ import annotations

import json
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import service_missing
from tests.support.nginx import NGINX, NginxFailed, nginx_in_front
from tests.support.server import RunningServer, create_account, login, start_server
from tests.tls.helpers import devreg_ca, issue, nginx_escaped

API = "/iot/api/v2"


@dataclass
class DeviceKeys:
    device_id: str
    cert: Path
    key: Path


@dataclass
class World:
    server: RunningServer
    ports: dict[str, int]  # transport -> port a device connects to
    api: httpx.Client  # x-api-key on the plain listener
    account: dict[str, str]
    profile: dict[str, Any]
    directory: Path

    @property
    def ca(self) -> Path:
        return self.server.data_dir / "ca.pem"

    def new_device(self, name: str) -> DeviceKeys:
        mandatory, optional = (field["id"] for field in self.profile["fields"])
        made = self.api.post(
            f"{API}/device",
            json={
                "division_id": self.profile["division"]["id"],
                "device_identifier": name,
                "device_profile_id": self.profile["id"],
                "fields": [{"id": mandatory, "value": "m0"}, {"id": optional, "value": "o0"}],
            },
        )
        assert made.status_code == 201, made.text
        device_id = made.json()["id"]
        issued = self.api.post(f"{API}/device/{device_id}/certificate", json={"generate_key": True})
        assert issued.status_code == 201, issued.text
        cert, key = self.directory / f"{name}.pem", self.directory / f"{name}.key"
        cert.write_text(issued.json()["pem"])
        key.write_text(issued.json()["private_key"])
        key.chmod(0o600)
        return DeviceKeys(device_id, cert, key)

    def device_client(self, transport: str, keys: DeviceKeys) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(keys.cert, keys.key)
        return httpx.Client(base_url=f"https://localhost:{self.ports[transport]}", verify=context)

    def record(self, device_id: str) -> dict[str, Any]:
        answer = self.api.get(f"{API}/device/{device_id}")
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    base = tmp_path_factory.mktemp(f"access-{request.param}")
    server = start_server(
        base / "data", database_url=database_url, rate_limit=0, mtls=True,
        args=["--trusted-proxy", "127.0.0.1"],
    )  # fmt: skip
    if NGINX is None:
        server.stop()
        service_missing("nginx is not installed (.ci/run installs it: apt-get install nginx-light)")
    try:
        with nginx_in_front(server, base / "nginx") as nginx_port:
            account = create_account(server, "Acme")
            api = httpx.Client(base_url=server.base_url, headers={"x-api-key": account["live_key"]})
            profile = api.post(
                f"{API}/device-profile",
                json={
                    "name": "Device Profile",
                    "fields": [
                        {"name": "Mandatory Field", "mandatory": True},
                        {"name": "Optional Field", "mandatory": False},
                    ],
                    "device_api_allow_read": True,
                    "device_api_allow_write": True,
                    "device_api_allow_renew_certificate": True,
                },
            ).json()
            assert server.mtls_port is not None
            yield World(
                server, {"listener": server.mtls_port, "nginx": nginx_port}, api, account,
                profile, base,
            )  # fmt: skip
            api.close()
    except NginxFailed as exc:
        pytest.fail(str(exc))
    finally:
        server.stop()


TRANSPORTS = ["listener", "nginx"]


def seed_body(world: World, identifier: str) -> dict[str, Any]:
    mandatory, optional = (field["id"] for field in world.profile["fields"])
    return {
        "device_identifier": identifier,
        "fields": [
            {"id": mandatory, "value": "updated mandatory value"},
            {"id": optional, "value": "updated optional value"},
        ],
    }


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_seed_003_curl_example_as_written(world: World, transport: str) -> None:
    keys = world.new_device(f"curl-{transport}")
    # device_identifier is unique per division: the second transport names its own.
    name = "New Device" if transport == "listener" else "New Device (via nginx)"
    body = json.dumps(seed_body(world, name), indent=2)
    port = world.ports[transport]
    done = subprocess.run(
        [
            "curl", "-sS", "-X", "PUT",
            f"https://localhost:{port}/iot/api/v2/device/{keys.device_id}",
            "--header", "Content-Type: application/json",
            "--key", str(keys.key), "--cert", str(keys.cert), "--cacert", str(world.ca),
            "--data-raw", body, "--write-out", "\n%{http_code}",
        ],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text, _, status = done.stdout.rpartition("\n")
    assert status == "201", text
    answer = json.loads(text)
    assert answer["id"] == keys.device_id
    assert answer["device_identifier"] == name
    assert answer["status"] == "ACTIVE"
    assert answer["division"] == world.profile["division"]
    assert answer["device_profile"] == {"id": world.profile["id"], "name": "Device Profile"}
    assert [(f["name"], f["value"], f["mandatory"]) for f in answer["fields"]] == [
        ("Mandatory Field", "updated mandatory value", True),
        ("Optional Field", "updated optional value", False),
    ]
    assert {k: answer[k] for k in answer if k.startswith("device_api_allow_")} == {
        "device_api_allow_read": True,
        "device_api_allow_write": True,
        "device_api_allow_renew_certificate": True,
    }
    # Durable and visible to the back office, in both dialects, with last_seen set.
    stored = world.record(keys.device_id)
    assert stored["device_identifier"] == name
    assert stored["fields"] == answer["fields"]
    assert stored["last_seen"] is not None
    token = login(world.server, world.account["account_id"], world.account["live_key"])
    f_id = "dev_" + keys.device_id.replace("-", "")
    seen_in_f = httpx.get(
        f"{world.server.base_url}/devices/{f_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert seen_in_f.status_code == 200
    assert seen_in_f.json()["last_seen"] == stored["last_seen"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_device_reads_its_own_record_and_is_seen(world: World, transport: str) -> None:
    keys = world.new_device(f"reader-{transport}")
    assert world.record(keys.device_id)["last_seen"] is None
    with world.device_client(transport, keys) as device:
        answer = device.get(f"{API}/device/{keys.device_id}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == keys.device_id
    assert answer.json()["last_seen"] is not None
    assert world.record(keys.device_id)["last_seen"] == answer.json()["last_seen"]


def assert_denied(answer: httpx.Response, words: str) -> None:
    assert answer.status_code == 403, answer.text
    (error,) = answer.json()["errors"]
    assert error["code"] == "access_denied"
    assert words in error["message"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_device_puts_back_the_record_it_read(world: World, transport: str) -> None:
    """DigiCert's read-modify-write: the record as GET showed it, one value changed, is
    accepted (its read-only keys ignored, its flags as they are); a flag changed is not."""
    keys = world.new_device(f"read-back-{transport}")
    with world.device_client(transport, keys) as device:
        read = device.get(f"{API}/device/{keys.device_id}").json()
        read["fields"][1]["value"] = "changed by the device"
        put = device.put(f"{API}/device/{keys.device_id}", json=read)
        assert put.status_code == 201, put.text
        assert [f["value"] for f in put.json()["fields"]] == ["m0", "changed by the device"]
        before = world.record(keys.device_id)
        read["device_api_allow_renew_certificate"] = False
        assert_denied(device.put(f"{API}/device/{keys.device_id}", json=read), "flags")
    assert world.record(keys.device_id) == before


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_another_devices_certificate_is_refused_and_changes_nothing(
    world: World, transport: str
) -> None:
    target = world.new_device(f"target-{transport}")
    intruder = world.new_device(f"intruder-{transport}")
    before = world.record(target.device_id)
    with world.device_client(transport, intruder) as device:
        assert_denied(device.get(f"{API}/device/{target.device_id}"), "does not belong")
        put = device.put(f"{API}/device/{target.device_id}", json=seed_body(world, "hijacked"))
        assert_denied(put, "does not belong")
    assert world.record(target.device_id) == before


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_disabled_device_is_refused_until_enabled(world: World, transport: str) -> None:
    keys = world.new_device(f"disabled-{transport}")
    assert world.api.put(f"{API}/device/{keys.device_id}/disable").status_code == 200
    with world.device_client(transport, keys) as device:
        assert_denied(device.get(f"{API}/device/{keys.device_id}"), "not active")
        put = device.put(f"{API}/device/{keys.device_id}", json=seed_body(world, "x"))
        assert_denied(put, "not active")
        assert world.record(keys.device_id)["device_identifier"] == f"disabled-{transport}"
        assert world.api.put(f"{API}/device/{keys.device_id}/enable").status_code == 200
        assert device.get(f"{API}/device/{keys.device_id}").status_code == 200


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("flag", "method"),
    [("device_api_allow_read", "GET"), ("device_api_allow_write", "PUT")],
)
def test_each_flag_false_refuses_its_call(
    world: World, transport: str, flag: str, method: str
) -> None:
    keys = world.new_device(f"{flag}-{transport}")
    body = seed_body(world, f"{flag}-{transport}")
    assert world.api.put(f"{API}/device/{keys.device_id}", json={**body, flag: False}).is_success
    before = world.record(keys.device_id)
    assert before[flag] is False
    with world.device_client(transport, keys) as device:
        if method == "GET":
            answer = device.get(f"{API}/device/{keys.device_id}")
        else:
            answer = device.put(f"{API}/device/{keys.device_id}", json=seed_body(world, "changed"))
        assert_denied(answer, f"{flag} is false")
    assert world.record(keys.device_id) == before


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_device_cannot_change_its_own_flags(world: World, transport: str) -> None:
    keys = world.new_device(f"flags-{transport}")
    before = world.record(keys.device_id)
    with world.device_client(transport, keys) as device:
        answer = device.put(
            f"{API}/device/{keys.device_id}",
            json={**seed_body(world, "x"), "device_api_allow_renew_certificate": False},
        )
    assert_denied(answer, "cannot change its own")
    assert world.record(keys.device_id) == before


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_device_updates_follow_the_seed_rules(world: World, transport: str) -> None:
    keys = world.new_device(f"rules-{transport}")
    mandatory, _optional = (field["id"] for field in world.profile["fields"])
    with world.device_client(transport, keys) as device:
        # fields are destructive: the optional value not sent is deleted
        answer = device.put(
            f"{API}/device/{keys.device_id}", json={"fields": [{"id": mandatory, "value": "m"}]}
        )
        assert answer.status_code == 201, answer.text
        assert [f["name"] for f in answer.json()["fields"]] == ["Mandatory Field"]
        assert answer.json()["device_identifier"] == f"rules-{transport}"  # not sent: kept
        before = world.record(keys.device_id)
        # a missing mandatory value is refused and changes nothing
        refused = device.put(f"{API}/device/{keys.device_id}", json={"fields": []})
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["code"] == "invalid_input"
        assert "Mandatory Field" in refused.json()["errors"][0]["message"]
        assert world.record(keys.device_id)["fields"] == before["fields"]


def test_a_certificate_devreg_never_registered_is_refused(world: World) -> None:
    """Signed by devreg's CA (so TLS accepts it) but not recorded on any device."""
    keys = world.new_device("registered")
    stray = issue(devreg_ca(world.server.data_dir), world.directory / "stray", "stray")
    context = ssl.create_default_context(cafile=str(world.ca))
    context.load_cert_chain(stray.cert_path, stray.key_path)
    port = world.ports["listener"]
    with httpx.Client(base_url=f"https://localhost:{port}", verify=context) as device:
        answer = device.get(f"{API}/device/{keys.device_id}")
    assert_denied(answer, "not registered")


def test_a_forwarded_certificate_from_an_untrusted_address_is_ignored(
    world: World, tmp_path: Path
) -> None:
    """The same header nginx sets, sent straight to a devreg that trusts no proxy: it is
    ignored, so the request has no credential at all."""
    keys = world.new_device("forged")
    plain = start_server(tmp_path / "data", database_url=world.server.database_url, rate_limit=0)
    try:
        answer = httpx.get(
            f"{plain.base_url}{API}/device/{keys.device_id}",
            headers={"X-SSL-Client-Cert": nginx_escaped(keys.cert.read_text())},
        )
    finally:
        plain.stop()
    assert answer.status_code == 401, answer.text
    assert answer.json()["errors"][0]["code"] == "invalid_api_key"
    assert world.record(keys.device_id)["last_seen"] is None
