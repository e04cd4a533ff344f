"""Every write path lands in the change log exactly as it should, with its actor and
request id, and whole records before and after; a refused request lands nothing. Through
the real server, on both stores."""

from __future__ import annotations

import base64
import ssl
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.changelog.conftest import last_seq, log_after
from tests.conformance.conftest import Vendors
from tests.support.server import run_cli

Entry = dict[str, Any]


def step(client: httpx.Client, action: Callable[[], object]) -> list[Entry]:
    """What `action` added to the log, as `client`'s account and mode see it."""
    before = last_seq(client)
    action()
    return log_after(client, before)


def kinds(entries: list[Entry]) -> list[tuple[str, str, str]]:
    return [(e["action"], e["object_type"], e["actor"]["kind"]) for e in entries]


def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def test_dialect_d_writes_are_logged_with_their_records(world: Vendors) -> None:
    live = world.d.live
    key_id = None
    made = step(live, lambda: ok(live.post("/division", json={"name": "North"}), 201))
    assert kinds(made) == [("division.create", "division", "api_key")]
    key_id = made[0]["actor"]["id"]
    assert made[0]["before"] is None and made[0]["after"]["name"] == "North"
    profile: dict[str, Any] = {}
    made = step(live, lambda: profile.update(world.profile("Meters")))
    assert kinds(made) == [("device_profile.create", "device_profile", "api_key")]
    assert [f["name"] for f in made[0]["after"]["fields"]] == ["Mandatory Field", "Optional Field"]

    device: dict[str, Any] = {}
    made = step(live, lambda: device.update(world.device(profile, "meter-1")))
    assert kinds(made) == [("device.create", "device", "api_key")]
    (entry,) = made
    assert entry["object_id"] == device["id"] and entry["object_version"] == 1
    assert entry["before"] is None
    after = entry["after"]
    assert after["device_identifier"] == "meter-1" and after["status"] == "ACTIVE"
    assert sorted(f["value"] for f in after["fields"]) == ["m0", "o0"]
    assert entry["actor"] == {"kind": "api_key", "id": key_id}

    mandatory = profile["fields"][0]["id"]
    body = {"device_identifier": "meter-1b", "fields": [{"id": mandatory, "value": "m1"}]}
    made = step(live, lambda: ok(live.put(f"/device/{device['id']}", json=body), 201))
    assert kinds(made) == [("device.update", "device", "api_key")]
    before, after = made[0]["before"], made[0]["after"]
    assert (before["device_identifier"], after["device_identifier"]) == ("meter-1", "meter-1b")
    assert [f["value"] for f in after["fields"]] == ["m1"]
    assert (before["version"], after["version"]) == (1, 2)

    for verb, action, status in (("disable", "device.disable", "DISABLED"),
                                 ("enable", "device.enable", "ACTIVE")):  # fmt: skip
        made = step(live, lambda v=verb: ok(live.put(f"/device/{device['id']}/{v}")))  # type: ignore[misc]
        assert kinds(made) == [(action, "device", "api_key")]
        assert made[0]["after"]["status"] == status

    issued: dict[str, Any] = {}
    made = step(live, lambda: issued.update(
        ok(live.post(f"/device/{device['id']}/certificate", json={"generate_key": True}), 201)
    ))  # fmt: skip
    assert kinds(made) == [("certificate.issue", "certificate", "api_key")]
    record = made[0]["after"]
    assert record["serial_number"] == issued["serial_number"] and record["pem"] == issued["pem"]
    text = str(made[0])
    assert "PRIVATE KEY" not in text and issued["private_key"][40:80] not in text

    made = step(live, lambda: ok(live.post(f"/device/{device['id']}/enrollment-secret"), 201))
    assert kinds(made) == [("enrollment_secret.create", "enrollment_secret", "api_key")]
    secret: dict[str, Any] = {}
    made = step(live, lambda: secret.update(
        ok(live.post(f"/device/{device['id']}/enrollment-secret"), 201)
    ))  # fmt: skip
    assert kinds(made) == [
        ("enrollment_secret.revoke", "enrollment_secret", "api_key"),  # the one it replaces
        ("enrollment_secret.create", "enrollment_secret", "api_key"),
    ]
    assert secret["secret"] not in str(made)

    revoke = {"reason": "superseded"}
    made = step(
        live, lambda: ok(live.put(f"/certificate/{issued['certificate_id']}/revoke", json=revoke))
    )
    assert kinds(made) == [("certificate.revoke", "certificate", "api_key")]
    assert made[0]["before"]["revoked_at"] is None
    assert made[0]["after"]["revocation_reason"] == "superseded"

    ok(live.post(f"/device/{device['id']}/certificate", json={"generate_key": True}), 201)
    made = step(live, lambda: ok(live.delete(f"/device/{device['id']}")))
    assert kinds(made) == [
        ("device.delete", "device", "api_key"),
        ("enrollment_secret.revoke", "enrollment_secret", "api_key"),
        ("certificate.revoke", "certificate", "api_key"),
    ]
    assert made[0]["after"]["status"] == "DELETED"
    made = step(live, lambda: ok(live.put(f"/device/{device['id']}/restore")))
    assert kinds(made) == [("device.restore", "device", "api_key")]

    # A profile change that drops a field: the profile, and each device that lost a value.
    other = world.device(profile, "meter-2")
    fields = [{"id": mandatory, "name": "Mandatory Field", "mandatory": True}]
    renamed = {"name": "Meters v2", "fields": fields}
    made = step(live, lambda: ok(live.put(f"/device-profile/{profile['id']}", json=renamed)))
    assert kinds(made) == [
        ("device_profile.update", "device_profile", "api_key"),
        ("device.update", "device", "api_key"),
    ]
    assert made[0]["before"]["name"] == "Meters" and made[0]["after"]["name"] == "Meters v2"
    assert made[1]["object_id"] == other["id"]
    assert sorted(f["value"] for f in made[1]["before"]["fields"]) == ["m0", "o0"]
    assert [f["value"] for f in made[1]["after"]["fields"]] == ["m0"]


def test_dialect_f_writes_are_logged_as_bearer_tokens_in_their_mode(world: Vendors) -> None:
    live, test = world.f_live, world.f_test
    made: dict[str, Any] = {}
    entries = step(world.d.live, lambda: made.update(
        ok(live.post("/devices", json={"reference_id": "ref-1"}), 201)
    ))  # fmt: skip
    assert kinds(entries) == [("device.create", "device", "bearer_token")]
    uuid_id = str(uuid.UUID(hex=made["id"].removeprefix("dev_")))
    assert entries[0]["object_id"] == uuid_id and entries[0]["after"]["reference_id"] == "ref-1"
    patch = {"reference_id": "ref-2"}
    entries = step(world.d.live, lambda: ok(live.patch(f"/devices/{made['id']}", json=patch)))
    assert kinds(entries) == [("device.update", "device", "bearer_token")]
    assert (entries[0]["before"]["reference_id"], entries[0]["after"]["reference_id"]) == (
        "ref-1", "ref-2",
    )  # fmt: skip
    entries = step(world.d.live, lambda: ok(live.delete(f"/devices/{made['id']}"), 202))
    assert kinds(entries) == [("device.delete", "device", "bearer_token")]
    # a test-mode device: in the test key's log, not in the live key's
    live_before = last_seq(world.d.live)
    entries = step(world.d.test, lambda: ok(test.post("/devices", json={}), 201))
    assert kinds(entries) == [("device.create", "device", "bearer_token")]
    assert entries[0]["live_mode"] is False
    assert log_after(world.d.live, live_before) == []


def test_the_device_itself_is_logged_by_its_certificate(world: Vendors) -> None:
    profile = world.profile("Self", device_api=True)
    device = world.device(profile, "self-1")
    own = world.device_client(device["id"])
    certificate = ok(world.d.live.get(f"/device/{device['id']}/certificate"))["records"][0]
    mandatory, _ = (f["id"] for f in profile["fields"])
    body = {"device_identifier": "self-1", "fields": [{"id": mandatory, "value": "own"}]}
    entries = step(world.d.live, lambda: ok(own.put(f"/device/{device['id']}", json=body), 201))
    assert kinds(entries) == [("device.update", "device", "device_certificate")]
    assert entries[0]["actor"]["id"] == certificate["certificate_id"]
    assert entries[0]["after"]["last_seen"] is not None  # in the same write
    assert step(world.d.live, lambda: ok(own.get(f"/device/{device['id']}"))) == []  # a read
    key = ec.generate_private_key(ec.SECP256R1())
    held = x509.load_pem_x509_certificate(certificate["pem"].encode())
    csr = (
        x509.CertificateSigningRequestBuilder().subject_name(held.subject)
        .add_extension(held.extensions.get_extension_for_class(x509.SubjectAlternativeName).value,
                       critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    entries = step(
        world.d.live, lambda: ok(own.post(f"/device/{device['id']}/renew", json={"csr": pem}))
    )
    assert kinds(entries) == [("certificate.renew", "certificate", "device_certificate")]
    own.close()


def test_est_enrollment_with_a_secret_is_logged_as_the_secret(world: Vendors) -> None:
    device = world.device(world.profile("Est", device_api=True), "est-1")
    secret = ok(world.d.live.post(f"/device/{device['id']}/enrollment-secret"), 201)["secret"]
    secret_entry = log_after(world.d.live, last_seq(world.d.live) - 1)[-1]
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "est")]))
        .sign(key, hashes.SHA256())
    )
    body = base64.b64encode(csr.public_bytes(serialization.Encoding.DER))
    context = ssl.create_default_context(cafile=str(world.server.data_dir / "ca.pem"))
    with httpx.Client(verify=context, timeout=30) as est:
        entries = step(world.d.live, lambda: est.post(
            f"https://localhost:{world.server.est_port}/.well-known/est/simpleenroll",
            content=body, headers={"content-type": "application/pkcs10"},
            auth=(device["id"], secret),
        ).raise_for_status())  # fmt: skip
    assert kinds(entries) == [
        ("enrollment_secret.use", "enrollment_secret", "enrollment_secret"),
        ("certificate.enroll", "certificate", "enrollment_secret"),
    ]
    assert {e["actor"]["id"] for e in entries} == {secret_entry["object_id"]}
    assert secret not in str(entries)
    # an accepted EST call moves last_seen, as every accepted device call does
    assert ok(world.d.live.get(f"/device/{device['id']}"))["last_seen"] is not None


def test_the_cli_is_logged_as_the_operator(world: Vendors) -> None:
    env = world.server.env
    before = last_seq(world.d.live)
    made = run_cli(env, "account", "set-version", world.d.account_id, "2024-08-24.zero")
    assert made.returncode == 0, made.stderr
    (entry,) = log_after(world.d.live, before)
    assert (entry["action"], entry["actor"]["kind"]) == ("account.update", "cli")
    assert entry["request_id"].startswith("cli_")
    assert (entry["before"]["api_version"], entry["after"]["api_version"]) == (
        "2025-09-14.anode", "2024-08-24.zero",
    )  # fmt: skip
    lines = world.directory / "devices.jsonl"
    lines.write_text('{"reference_id": "imp-1"}\n{"reference_id": "imp-2"}\n')
    before = last_seq(world.d.live)
    made = run_cli(env, "import", "devices", "--account", world.d.account_id, str(lines))
    assert made.returncode == 0, made.stderr
    entries = log_after(world.d.live, before)
    assert kinds(entries) == [("device.import", "device", "cli")] * 2
    assert len({e["request_id"] for e in entries}) == 1  # one command, one request id


def test_a_refused_request_logs_nothing(world: Vendors) -> None:
    live = world.d.live
    profile = world.profile("Refusals")
    device = world.device(profile, "taken")
    before = last_seq(live)
    refused = [
        live.post("/device", json={"device_identifier": "taken", "device_profile_id": profile["id"],
                                   "division_id": profile["division"]["id"],
                                   "fields": [{"id": profile["fields"][0]["id"], "value": "x"}]}),
        live.put(f"/device/{device['id']}", json={"fields": []}),  # mandatory missing
        live.put(f"/device/{uuid.uuid4()}", json={"fields": []}),
        live.put(f"/device/{device['id']}/restore"),  # not deleted
        live.put("/certificate/00000000-0000-0000-0000-000000000000/revoke",
                 json={"reason": "keyCompromise"}),
        world.f_live.patch(f"/devices/dev_{'0' * 32}", json={"reference_id": "x"}),
        world.f_live.post("/devices", json={"reference_id": 5}),
    ]  # fmt: skip
    assert [r.status_code for r in refused] == [400, 400, 400, 400, 400, 404, 400], [
        r.text for r in refused
    ]
    assert log_after(live, before) == []


def test_the_request_id_is_echoed_and_logged(world: Vendors) -> None:
    live = world.d.live
    answer = live.post("/division", json={"name": "Tagged"}, headers={"x-request-id": "trace-42"})
    assert answer.status_code == 201 and answer.headers["x-request-id"] == "trace-42"
    assert log_after(live, last_seq(live) - 1)[-1]["request_id"] == "trace-42"
    for name, bad in (("Spaced", "bad id"), ("Long", "x" * 129), ("Quoted", 'a"b')):
        made = live.post("/division", json={"name": name}, headers={"x-request-id": bad})
        assert made.headers["x-request-id"].startswith("req_")  # refused as given: a new one
        logged = log_after(live, last_seq(live) - 1)[-1]["request_id"]
        assert logged == made.headers["x-request-id"]
    for answer in (live.get("/nowhere"), world.f_live.get("/devices/nope"),
                   world.d.anon.get("/device")):  # fmt: skip
        assert answer.headers["x-request-id"].startswith("req_"), answer.headers


def test_revocations_and_secret_revocations_are_logged(world: Vendors) -> None:
    live = world.d.live
    device = world.device(world.profile("Revoke"), "rv-1")
    for _ in range(2):
        ok(live.post(f"/device/{device['id']}/certificate", json={"generate_key": True}), 201)
    revoke_all = {"reason": "cessationOfOperation"}
    made = step(
        live, lambda: ok(live.put(f"/device/{device['id']}/certificate/revoke", json=revoke_all))
    )
    assert kinds(made) == [("certificate.revoke", "certificate", "api_key")] * 2
    assert {e["after"]["revocation_reason"] for e in made} == {"cessationOfOperation"}
    ok(live.post(f"/device/{device['id']}/enrollment-secret"), 201)
    made = step(live, lambda: ok(live.put(f"/device/{device['id']}/enrollment-secret/revoke")))
    assert kinds(made) == [("enrollment_secret.revoke", "enrollment_secret", "api_key")]
    assert (made[0]["before"]["state"], made[0]["after"]["state"]) == ("outstanding", "revoked")
    # nothing to revoke: nothing logged
    assert (
        step(live, lambda: ok(live.put(f"/device/{device['id']}/enrollment-secret/revoke"))) == []
    )


def test_the_cli_revocation_is_logged_as_the_operator(world: Vendors) -> None:
    live = world.d.live
    device = world.device(world.profile("CliRevoke"), "cr-1")
    ok(live.post(f"/device/{device['id']}/certificate", json={"generate_key": True}), 201)
    before = last_seq(live)
    done = run_cli(world.server.env, "certificates", "revoke", "--account", world.d.account_id,
                   "--device", device["id"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert kinds(log_after(live, before)) == [("certificate.revoke", "certificate", "cli")]
