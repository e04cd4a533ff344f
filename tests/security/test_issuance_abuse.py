"""Issue 12 item 7: a stolen device certificate, end to end over real EST and mutual TLS on
a real `devreg serve` (SQLite and PostgreSQL).

The thief re-enrolls with the stolen certificate (and with what it minted) until the
device's cap of active certificates refuses it; the owner revokes the stolen certificate
for keyCompromise, and everything it minted, transitively, is refused on the client-auth
listener at once and listed in the CRL. The device's issuance bucket refuses a burst
(429 with Retry-After, in EST's and dialect D's envelopes), and the owner can revoke all of
a device's certificates through dialect D or the `devreg certificates revoke` command.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.issuance_support import API, EST, Held, World, csr, est_body, new_key
from tests.support.server import run_cli, start_server

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
MAX_ACTIVE = 3
BURST = 5


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    base = tmp_path_factory.mktemp(f"issuance-{request.param}")
    server = start_server(
        base / "data", database_url=database_url, mtls=True, est=True,
        max_active_certificates=MAX_ACTIVE, issuance_burst=BURST, issuance_rate=1,
    )  # fmt: skip
    try:
        yield World(server, base)
    finally:
        server.stop()


def test_a_stolen_certificate_mints_little_and_its_revocation_takes_it_all(world: World) -> None:
    device_id = world.device()
    stolen = world.issue(device_id)  # the device's certificate and key, now the thief's
    minted = []
    refused = []
    holder = stolen
    with world.est(stolen) as est:
        for _ in range(10):  # bounded: the fix refuses the 3rd; before, all 10 were issued
            key = new_key()
            answer = est.post(EST + "simpleenroll", **est_body(csr(key)))
            if answer.status_code == 200:
                minted.append(world.enrolled(answer, key))
            else:
                refused.append(answer)
    # The device holds at most MAX_ACTIVE: the stolen one and two minted.
    assert len(minted) == MAX_ACTIVE - 1, [a.text for a in refused]
    assert {a.status_code for a in refused} == {409}
    assert "active certificates" in refused[0].text
    assert refused[0].headers["content-type"].startswith("text/plain")
    records = world.certificates(device_id)
    assert len(records) == MAX_ACTIVE
    assert records[stolen.serial]["issued_by"].startswith("api_key:")
    assert all(
        records[m.serial]["issued_by"] == f"certificate:{stolen.certificate_id}" for m in minted
    )

    # What a minted certificate mints is the stolen one's too: make room (the owner retires
    # one minted certificate as superseded) and let the thief re-enroll with the other.
    retired, holder = minted
    revoke_one = world.api.put(
        f"/certificate/{records[retired.serial]['certificate_id']}/revoke",
        json={"reason": "superseded"},
    )
    assert revoke_one.status_code == 200, revoke_one.text
    key = new_key()
    with world.est(holder) as est:
        grandchild = world.enrolled(est.post(EST + "simpleenroll", **est_body(csr(key))), key)
    records = world.certificates(device_id)
    holder_id = records[holder.serial]["certificate_id"]
    assert records[grandchild.serial]["issued_by"] == f"certificate:{holder_id}"
    for held in (stolen, holder, grandchild):
        assert world.device_answers(device_id, held) == 200

    # The owner learns of the theft: one revocation, keyCompromise.
    answer = world.api.put(
        f"/certificate/{stolen.certificate_id}/revoke", json={"reason": "keyCompromise"}
    )
    assert answer.status_code == 200, answer.text
    for held in (stolen, holder, grandchild):
        assert world.device_answers(device_id, held) == 403
    records = world.certificates(device_id)
    assert {s: r["revocation_reason"] for s, r in records.items()} == {
        stolen.serial: "keyCompromise",
        retired.serial: "superseded",
        holder.serial: "keyCompromise",
        grandchild.serial: "keyCompromise",
    }
    revoked = {stolen.serial, retired.serial, holder.serial, grandchild.serial}
    assert revoked <= world.crl_serials(including=revoked)
    # Revoked certificates mint nothing either.
    with world.est(holder) as est:
        assert est.post(EST + "simpleenroll", **est_body(csr(new_key()))).status_code == 403


def test_issuance_per_device_is_rate_limited_below_the_request_limit(world: World) -> None:
    device_id = world.device()
    held = world.issue(device_id)  # one token of BURST
    # Each issuance spends a token; each new certificate is retired at once, so that the
    # cap stays out of the way.
    answers = []
    with world.est(held) as est:
        for _ in range(BURST + 2):
            key = new_key()
            answer = est.post(EST + "simplereenroll", **est_body(csr(key, held)))
            answers.append(answer.status_code)
            if answer.status_code == 200:
                new = world.enrolled(answer, key)
                _retire(world, device_id, new)
    assert answers == [200] * (BURST - 1) + [429] * 3, answers
    with world.est(held) as est:
        refused = est.post(EST + "simplereenroll", **est_body(csr(new_key(), held)))
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    # The same bucket holds for the back office's own issuance, in dialect D's envelope.
    by_api = world.api.post(f"/device/{device_id}/certificate", json={"generate_key": True})
    assert by_api.status_code == 429, by_api.text
    assert by_api.json()["errors"][0]["code"] == "rate_limit_exceeded"
    assert int(by_api.headers["retry-after"]) >= 1
    # Another device is not affected, and the request limit itself (100/s) was far away.
    assert (
        world.api.post(
            f"/device/{world.device()}/certificate", json={"generate_key": True}
        ).status_code
        == 201
    )


def test_the_cap_answers_409_in_dialect_d_too(world: World) -> None:
    device_id = world.device()
    for _ in range(MAX_ACTIVE):
        world.issue(device_id)
    over = world.api.post(f"/device/{device_id}/certificate", json={"generate_key": True})
    assert over.status_code == 409, over.text
    assert over.json()["errors"][0]["code"] == "active_certificate_limit"
    assert len(world.certificates(device_id)) == MAX_ACTIVE  # nothing was written


def test_all_of_a_devices_certificates_are_revoked_by_one_call(world: World) -> None:
    device_id = world.device()
    held = [world.issue(device_id) for _ in range(2)]
    answer = world.api.put(
        f"/device/{device_id}/certificate/revoke", json={"reason": "keyCompromise"}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["total"] == 2
    assert {r["revocation_reason"] for r in body["records"]} == {"keyCompromise"}
    for one in held:
        assert world.device_answers(device_id, one) == 403
    assert {h.serial for h in held} <= world.crl_serials(including={h.serial for h in held})
    again = world.api.put(f"/device/{device_id}/certificate/revoke", json={})
    assert (again.status_code, again.json()["total"]) == (200, 0)
    unknown = world.api.put(
        "/device/00000000-0000-7000-8000-000000000000/certificate/revoke", json={}
    )
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["code"] == "entity_not_found"
    # A deleted device is unknown here as everywhere (deleting revoked its certificates).
    assert world.api.delete(f"/device/{device_id}").status_code == 200
    gone = world.api.put(f"/device/{device_id}/certificate/revoke", json={})
    assert gone.json()["errors"][0]["code"] == "entity_not_found"


def test_the_cli_revokes_all_of_a_devices_certificates(world: World, tmp_path: Path) -> None:
    device_id = world.device()
    held = [world.issue(device_id) for _ in range(2)]
    done = run_cli(
        world.server.env, "certificates", "revoke", "--account", world.account["account_id"],
        "--device", device_id, "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    revoked = json.loads(done.stdout)["revoked"]
    assert len(revoked) == 2
    for one in held:
        assert world.device_answers(device_id, one) == 403
    records = world.certificates(device_id)
    assert {r["revocation_reason"] for r in records.values()} == {"keyCompromise"}
    wrong = run_cli(
        world.server.env, "certificates", "revoke", "--account", world.account["account_id"],
        "--device", "00000000-0000-7000-8000-000000000000",
    )  # fmt: skip
    assert wrong.returncode == 1 and "No device" in wrong.stderr


def _retire(world: World, device_id: str, held: Held) -> None:
    record = world.certificates(device_id)[held.serial]
    answer = world.api.put(
        f"/certificate/{record['certificate_id']}/revoke", json={"reason": "superseded"}
    )
    assert answer.status_code == 200, answer.text


def held_back(
    world: World, port: int | None, held: Held, head: bytes, body: bytes
) -> ssl.SSLSocket:
    """A request from `held` whose head and first bytes of body are sent, the rest not yet
    (past authentication, waiting for its body)."""
    context = ssl.create_default_context(cafile=world.ca)
    context.load_cert_chain(held.cert, held.key)
    sock = context.wrap_socket(
        socket.create_connection(("127.0.0.1", port or 0), timeout=10), server_hostname="localhost"
    )
    sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
    return sock


def finish(sock: ssl.SSLSocket, body: bytes) -> int:
    """Send the rest of the body; the answer's status."""
    sock.sendall(body[10:])
    answer = b""
    while b"\r\n" not in answer:
        chunk = sock.recv(65536)
        assert chunk, "closed without an answer"
        answer += chunk
    sock.close()
    return int(answer.split(b" ", 2)[1])


def test_requests_held_back_across_a_revocation_mint_and_change_nothing(world: World) -> None:
    """Found by review: requests authenticated with a certificate, their bodies held back
    until it was revoked, still issued certificates (that the cascade had not seen) and
    wrote the device's record."""
    device_id = world.device()
    stolen = world.issue(device_id)
    before = world.api.get(f"/device/{device_id}").json()
    reenroll = b"POST " + EST.encode() + b"simplereenroll HTTP/1.1\r\nHost: localhost\r\n"
    reenroll += b"Content-Type: application/pkcs10\r\n"
    bodies = [est_body(csr(new_key(), stolen))["content"] for _ in range(2)]
    held = [held_back(world, world.server.est_port, stolen, reenroll, body) for body in bodies]
    put = f"PUT {API}/device/{device_id} HTTP/1.1\r\nHost: localhost\r\n".encode()
    put += b"Content-Type: application/json\r\n"
    update = json.dumps({"device_identifier": "written-after-revocation"}).encode()
    held_put = held_back(world, world.server.mtls_port, stolen, put, update)
    time.sleep(0.5)  # all three are past authentication
    revoked = world.api.put(
        f"/certificate/{stolen.certificate_id}/revoke", json={"reason": "keyCompromise"}
    )
    assert revoked.status_code == 200, revoked.text
    assert [finish(sock, body) for sock, body in zip(held, bodies, strict=True)] == [403, 403]
    assert finish(held_put, update) == 403
    statuses = {c["status"] for c in world.certificates(device_id).values()}
    assert statuses == {"REVOKED"}  # the stolen one only: nothing minted survived
    assert len(world.certificates(device_id)) == 1
    after = world.api.get(f"/device/{device_id}").json()
    assert after["device_identifier"] == before["device_identifier"]
