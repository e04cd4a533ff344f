"""EST (RFC 7030) end to end, on a real `devreg serve` (SQLite and PostgreSQL) with its EST
listener and its client-auth listener, driven as a device would drive it: CSRs made with
the `openssl` binary, EST calls made with the `curl` binary, answers unpacked with
`openssl pkcs7` and checked with `openssl verify`.

- `cacerts`: devreg's CA, and nothing else, as base64 PKCS#7;
- `simpleenroll` with a one-time enrollment secret (HTTP Basic `<device UUID>:<secret>`),
  used once, never spent on a request that is refused for what it carries;
- `simpleenroll` and `simplereenroll` with a certificate devreg issued;
- where EST is served (the EST port and the client-auth listener) and where it is not.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dialect_d.helpers import assert_errors, assert_no_such_device
from tests.support.server import RunningServer, create_account, start_server

API = "/iot/api/v2"
EST = "/.well-known/est"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def run(*argv: str, data: bytes | None = None, cwd: Path | None = None) -> bytes:
    done = subprocess.run(argv, input=data, capture_output=True, timeout=30, cwd=cwd)
    assert done.returncode == 0, (argv, done.stdout, done.stderr)
    return done.stdout


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; the last of each
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


@dataclass
class Csr:
    key: Path
    der: Path
    b64: Path  # the simpleenroll body: base64 DER PKCS#10


@dataclass
class Keys:
    """A certificate and its key, as files curl can present."""

    cert: Path
    key: Path


@dataclass
class World:
    server: RunningServer
    api: httpx.Client  # x-api-key, plain listener
    account: dict[str, str]
    profile: dict[str, Any]
    directory: Path
    serial: int = 0

    @property
    def ca(self) -> Path:
        return self.server.data_dir / "ca.pem"

    @property
    def est_url(self) -> str:
        return f"https://localhost:{self.server.est_port}"

    @property
    def mtls_url(self) -> str:
        return f"https://localhost:{self.server.mtls_port}"

    def fresh(self, name: str) -> Path:
        self.serial += 1
        path = self.directory / f"{self.serial:03d}-{name}"
        path.mkdir()
        return path

    def new_device(self, name: str, **flags: bool) -> str:
        made = self.api.post(
            f"{API}/device",
            json={
                "division_id": self.profile["division"]["id"],
                "device_identifier": f"{name}-{self.serial}",
                "device_profile_id": self.profile["id"],
                "fields": [],
                **flags,
            },
        )
        self.serial += 1
        assert made.status_code == 201, made.text
        device_id: str = made.json()["id"]
        return device_id

    def secret(self, device_id: str) -> str:
        made = self.api.post(f"{API}/device/{device_id}/enrollment-secret")
        assert made.status_code == 201, made.text
        assert set(made.json()) == {"secret", "expires_at"}
        secret: str = made.json()["secret"]
        return secret

    def csr(self, subject: str = "/CN=est-device", *extra: str) -> Csr:
        """A new P-256 key and a DER CSR for it, made with the openssl binary; base64'd."""
        where = self.fresh("csr")
        key, der, b64 = where / "device.key", where / "csr.der", where / "csr.b64"
        run(
            "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", str(key), "-outform", "DER", "-out", str(der),
            "-subj", subject, *extra,
        )  # fmt: skip
        run("openssl", "base64", "-in", str(der), "-out", str(b64))
        return Csr(key, der, b64)

    def curl(self, url: str, *args: str) -> Answer:
        where = self.fresh("curl")
        headers, body = where / "headers", where / "body"
        done = subprocess.run(
            [
                "curl", "-sS", "--cacert", str(self.ca), "-D", str(headers), "-o", str(body),
                "--write-out", "%{http_code}", *args, url,
            ],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert done.returncode == 0, (args, done.stderr)
        parsed: dict[str, str] = {}
        for line in headers.read_text().splitlines()[1:]:
            name, sep, value = line.partition(":")
            if sep:
                parsed[name.strip().lower()] = value.strip()
        return Answer(int(done.stdout), parsed, body.read_bytes() if body.exists() else b"")

    def enroll(
        self, csr: Csr, *auth: str, url: str | None = None, path: str = "simpleenroll"
    ) -> Answer:
        return self.curl(
            f"{url or self.est_url}{EST}/{path}",
            "-H", "Content-Type: application/pkcs10", "--data-binary", f"@{csr.b64}", *auth,
        )  # fmt: skip

    def with_secret(self, device_id: str, secret: str, csr: Csr) -> Answer:
        return self.enroll(csr, "-u", f"{device_id}:{secret}")

    def issued(self, answer: Answer, csr: Csr) -> Keys:
        """The single certificate of a 200 simpleenroll answer, unpacked with openssl and
        verified against devreg's CA for client authentication."""
        assert answer.status == 200, (answer.status, answer.text)
        assert answer.headers["content-type"] == "application/pkcs7-mime; smime-type=certs-only"
        assert answer.headers["content-transfer-encoding"] == "base64"
        pems = unpack(answer.body)
        assert len(pems) == 1, pems
        cert = csr.key.parent / "device.pem"
        cert.write_text(pems[0])
        verified = run("openssl", "verify", "-CAfile", str(self.ca), "-purpose", "sslclient",
                       str(cert))  # fmt: skip
        assert verified.decode().strip() == f"{cert}: OK"
        # the certificate is for the key the CSR was made with
        assert public_key(cert, "x509") == public_key(csr.key, "pkey")
        return Keys(cert, csr.key)

    def certificates(self, device_id: str) -> list[dict[str, Any]]:
        listed = self.api.get(f"{API}/device/{device_id}/certificate")
        assert listed.status_code == 200, listed.text
        records: list[dict[str, Any]] = listed.json()["records"]
        return records

    def as_device(self, keys: Keys, device_id: str) -> Answer:
        """The device reading its own record on the client-auth listener."""
        return self.curl(
            f"{self.mtls_url}{API}/device/{device_id}", "--cert", str(keys.cert), "--key",
            str(keys.key),
        )  # fmt: skip

    def enrolled(self, name: str, **flags: bool) -> tuple[str, Keys]:
        """A device holding a certificate it enrolled for over EST with a secret."""
        device_id = self.new_device(name, **flags)
        csr = self.csr()
        return device_id, self.issued(self.with_secret(device_id, self.secret(device_id), csr), csr)


def unpack(body: bytes) -> list[str]:
    """`base64 -d | openssl pkcs7 -inform DER -print_certs`: the PEM certificates."""
    der = run("base64", "-d", data=body)
    text = run("openssl", "pkcs7", "-inform", "DER", "-print_certs", data=der).decode()
    ends = "-----END CERTIFICATE-----"
    return [part[part.index("-----BEGIN") :] + ends + "\n" for part in text.split(ends)[:-1]]


def x509_field(cert: Path, option: str) -> str:
    out = run("openssl", "x509", "-in", str(cert), "-noout", option, "-nameopt", "RFC2253")
    return out.decode().strip().partition("=")[2]


def public_key(path: Path, kind: str) -> bytes:
    """The PEM public key of a certificate (`x509`) or of a private key (`pkey`)."""
    if kind == "x509":
        return run("openssl", "x509", "-in", str(path), "-noout", "-pubkey")
    return run("openssl", "pkey", "-in", str(path), "-pubout")


def der_of(pem: Path) -> bytes:
    return run("openssl", "x509", "-in", str(pem), "-outform", "DER")


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    base = tmp_path_factory.mktemp(f"est-{request.param}")
    server = start_server(
        base / "data", database_url=database_url, rate_limit=0, mtls=True, est=True
    )
    try:
        account = create_account(server, "Acme")
        with httpx.Client(
            base_url=server.base_url, headers={"x-api-key": account["live_key"]}
        ) as api:
            profile = api.post(
                f"{API}/device-profile",
                json={
                    "name": "EST devices",
                    "fields": [],
                    "device_api_allow_read": True,
                    "device_api_allow_write": True,
                    "device_api_allow_renew_certificate": True,
                },
            )
            assert profile.status_code == 201, profile.text
            (base / "work").mkdir()
            yield World(server, api, account, profile.json(), base / "work")
    finally:
        server.stop()


def assert_unauthenticated(answer: Answer) -> None:
    assert answer.status == 401, (answer.status, answer.text)
    assert answer.headers["www-authenticate"].startswith("Basic"), answer.headers
    assert answer.headers["content-type"].startswith("text/plain"), answer.headers


def assert_plain(answer: Answer, status: int) -> None:
    assert answer.status == status, (answer.status, answer.text)
    assert answer.headers["content-type"].startswith("text/plain"), answer.headers
    assert answer.text.strip()


# --- cacerts ---------------------------------------------------------------------------------


def test_cacerts_holds_exactly_devregs_ca(world: World) -> None:
    answer = world.curl(f"{world.est_url}{EST}/cacerts")
    assert answer.status == 200, answer.text
    assert answer.headers["content-type"] == "application/pkcs7-mime"
    assert answer.headers["content-transfer-encoding"] == "base64"
    (pem,) = unpack(answer.body)
    got = world.fresh("cacerts") / "ca.pem"
    got.write_text(pem)
    published = world.fresh("published") / "ca.pem"
    served = httpx.get(world.server.base_url + "/ca.pem")
    assert served.status_code == 200
    published.write_text(served.text)
    assert der_of(got) == der_of(published) == der_of(world.ca)


# --- simpleenroll with a one-time secret ----------------------------------------------------


def test_enroll_with_a_secret_issues_a_working_certificate_once(world: World) -> None:
    device_id = world.new_device("first")
    secret = world.secret(device_id)
    csr = world.csr("/CN=whatever-the-device-asks/O=ignored")
    keys = world.issued(world.with_secret(device_id, secret, csr), csr)
    # devreg names the certificate after the device, whatever the request asked for
    assert x509_field(keys.cert, "-subject") == f"CN={device_id},O=devreg"
    (listed,) = world.certificates(device_id)
    assert der_of(keys.cert) == run("openssl", "x509", "-outform", "DER",
                                    data=listed["pem"].encode())  # fmt: skip
    assert listed["status"] == "ACTIVE" and listed["issuer"] == "devreg"
    # the certificate authenticates the device on the client-auth listener
    read = world.as_device(keys, device_id)
    assert read.status == 200, read.text
    assert read.headers["content-type"].startswith("application/json")
    assert '"id":"' + device_id + '"' in read.text.replace(" ", "")
    # the secret is used up
    again = world.with_secret(device_id, secret, world.csr())
    assert_unauthenticated(again)
    assert len(world.certificates(device_id)) == 1


def test_a_wrong_secret_is_refused_and_spends_nothing(world: World) -> None:
    device_id = world.new_device("wrong")
    secret = world.secret(device_id)
    assert_unauthenticated(world.with_secret(device_id, secret[:-2] + "xx", world.csr()))
    assert_unauthenticated(world.with_secret(device_id, "not-a-secret", world.csr()))
    assert world.certificates(device_id) == []
    csr = world.csr()
    world.issued(world.with_secret(device_id, secret, csr), csr)


def test_a_secret_is_only_good_for_its_own_device(world: World) -> None:
    device_a, device_b = world.new_device("owner"), world.new_device("other")
    secret_a = world.secret(device_a)
    assert_unauthenticated(world.with_secret(device_b, secret_a, world.csr()))
    assert world.certificates(device_b) == []
    csr = world.csr()  # and it still works for its own device
    keys = world.issued(world.with_secret(device_a, secret_a, csr), csr)
    assert x509_field(keys.cert, "-subject") == f"CN={device_a},O=devreg"


@pytest.mark.parametrize(
    "credentials",
    [
        [],  # no Authorization at all
        ["-u", "not-a-uuid:secret"],
        ["-H", "Authorization: Bearer abc"],
        ["-u", "00000000-0000-4000-8000-000000000000:secret"],
    ],
    ids=["none", "user-not-uuid", "not-basic", "unknown-device"],
)
def test_enroll_without_usable_credentials_is_401(world: World, credentials: list[str]) -> None:
    assert_unauthenticated(world.enroll(world.csr(), *credentials))


def test_a_disabled_devices_secret_is_refused_and_not_spent(world: World) -> None:
    """Refused like a wrong secret (nobody learns the device's status without it), and not
    used up: once the device is enabled again the same secret enrolls it."""
    device_id = world.new_device("disabled")
    secret = world.secret(device_id)
    assert world.api.put(f"{API}/device/{device_id}/disable").status_code == 200
    assert_unauthenticated(world.with_secret(device_id, secret, world.csr()))
    assert world.certificates(device_id) == []
    assert world.api.put(f"{API}/device/{device_id}/enable").status_code == 200
    csr = world.csr()
    world.issued(world.with_secret(device_id, secret, csr), csr)


def test_a_deleted_devices_secret_is_refused(world: World) -> None:
    device_id = world.new_device("deleted")
    secret = world.secret(device_id)
    assert world.api.delete(f"{API}/device/{device_id}").status_code == 200
    assert_unauthenticated(world.with_secret(device_id, secret, world.csr()))


def tampered(world: World, kind: str) -> Csr:
    csr = world.csr()
    if kind == "not-base64":
        csr.b64.write_bytes(b"this is %%% not base64 at all\n")
    elif kind == "not-a-csr":
        csr.b64.write_bytes(base64.encodebytes(b"\x30\x03\x02\x01\x05 hello"))
    elif kind == "pem-not-base64-der":
        csr.b64.write_bytes(run("openssl", "req", "-inform", "DER", "-in", str(csr.der)))
    else:  # bad signature: the last byte of the DER is the signature's
        der = bytearray(csr.der.read_bytes())
        der[-1] ^= 0x01
        csr.b64.write_bytes(base64.encodebytes(bytes(der)))
    return csr


@pytest.mark.parametrize("kind", ["not-base64", "not-a-csr", "pem-not-base64-der", "bad-signature"])
def test_a_malformed_csr_is_400_and_does_not_spend_the_secret(world: World, kind: str) -> None:
    device_id = world.new_device(kind)
    secret = world.secret(device_id)
    assert_plain(world.with_secret(device_id, secret, tampered(world, kind)), 400)
    assert world.certificates(device_id) == []
    csr = world.csr()
    world.issued(world.with_secret(device_id, secret, csr), csr)


def test_another_devices_key_is_400_and_does_not_spend_the_secret(world: World) -> None:
    _, holder_keys = world.enrolled("key-holder")
    device_id = world.new_device("key-thief")
    secret = world.secret(device_id)
    stolen = world.csr()
    der = run("openssl", "req", "-new", "-key", str(holder_keys.key), "-subj", "/CN=x",
              "-outform", "DER")  # fmt: skip
    stolen.b64.write_bytes(base64.encodebytes(der))
    answer = world.with_secret(device_id, secret, stolen)
    assert_plain(answer, 400)
    assert "another device" in answer.text
    assert world.certificates(device_id) == []
    csr = world.csr()
    world.issued(world.with_secret(device_id, secret, csr), csr)


def test_a_wrong_content_type_is_415_and_does_not_spend_the_secret(world: World) -> None:
    device_id = world.new_device("ctype")
    secret = world.secret(device_id)
    csr = world.csr()
    for content_type in ("application/json", "text/plain", "application/pkcs7-mime"):
        answer = world.curl(
            f"{world.est_url}{EST}/simpleenroll", "-H", f"Content-Type: {content_type}",
            "--data-binary", f"@{csr.b64}", "-u", f"{device_id}:{secret}",
        )  # fmt: skip
        assert_plain(answer, 415)
    world.issued(world.with_secret(device_id, secret, csr), csr)


# --- simpleenroll with a certificate ---------------------------------------------------------


@pytest.mark.parametrize("port", ["mtls", "est"])
def test_enroll_with_an_existing_certificate(world: World, port: str) -> None:
    device_id, keys = world.enrolled(f"cert-enroll-{port}")
    csr = world.csr("/CN=anything")
    url = world.mtls_url if port == "mtls" else world.est_url
    answer = world.enroll(csr, "--cert", str(keys.cert), "--key", str(keys.key), url=url)
    new = world.issued(answer, csr)
    assert x509_field(new.cert, "-subject") == f"CN={device_id},O=devreg"
    assert x509_field(new.cert, "-serial") != x509_field(keys.cert, "-serial")
    assert len(world.certificates(device_id)) == 2
    assert world.as_device(new, device_id).status == 200


def test_enroll_with_a_certificate_needs_the_renew_flag(world: World) -> None:
    device_id, keys = world.enrolled("no-renew")
    flag = world.api.put(
        f"{API}/device/{device_id}", json={"device_api_allow_renew_certificate": False}
    )
    assert flag.is_success, flag.text
    answer = world.enroll(world.csr(), "--cert", str(keys.cert), "--key", str(keys.key))
    assert_plain(answer, 403)
    assert "device_api_allow_renew_certificate" in answer.text
    assert len(world.certificates(device_id)) == 1


# --- simplereenroll --------------------------------------------------------------------------


def renewal_csr(world: World, device_id: str, subject: str | None = None) -> Csr:
    return world.csr(
        subject or f"/O=devreg/CN={device_id}",
        "-addext",
        f"subjectAltName=URI:urn:uuid:{device_id}",
    )


@pytest.mark.parametrize("port", ["mtls", "est"])
def test_reenroll_with_the_current_certificate(world: World, port: str) -> None:
    device_id, keys = world.enrolled(f"reenroll-{port}")
    csr = renewal_csr(world, device_id)
    url = world.mtls_url if port == "mtls" else world.est_url
    answer = world.enroll(
        csr, "--cert", str(keys.cert), "--key", str(keys.key), url=url, path="simplereenroll"
    )
    new = world.issued(answer, csr)
    assert x509_field(new.cert, "-subject") == f"CN={device_id},O=devreg"
    assert len(world.certificates(device_id)) == 2
    assert world.as_device(new, device_id).status == 200


def test_reenroll_with_a_mismatched_subject_is_400(world: World) -> None:
    device_id, keys = world.enrolled("mismatch")
    for csr in (
        renewal_csr(world, device_id, f"/O=devreg/CN={world.new_device('someone-else')}"),
        renewal_csr(world, device_id, f"/CN={device_id}"),
        world.csr(f"/O=devreg/CN={device_id}"),  # no subjectAltName
    ):
        answer = world.enroll(
            csr, "--cert", str(keys.cert), "--key", str(keys.key), path="simplereenroll"
        )
        assert_plain(answer, 400)
    assert len(world.certificates(device_id)) == 1


def test_reenroll_without_a_client_certificate_is_401(world: World) -> None:
    device_id = world.new_device("anonymous")
    assert_unauthenticated(world.enroll(renewal_csr(world, device_id), path="simplereenroll"))
    # nor does a secret stand in for the certificate being renewed
    secret = world.secret(device_id)
    answer = world.enroll(
        renewal_csr(world, device_id), "-u", f"{device_id}:{secret}", path="simplereenroll"
    )
    assert_unauthenticated(answer)
    assert world.certificates(device_id) == []


def test_a_revoked_certificate_is_403(world: World) -> None:
    device_id, keys = world.enrolled("revoked")
    (record,) = world.certificates(device_id)
    revoked = world.api.put(f"{API}/certificate/{record['certificate_id']}/revoke", json={})
    assert revoked.status_code == 200, revoked.text
    auth = ("--cert", str(keys.cert), "--key", str(keys.key))
    for path in ("simplereenroll", "simpleenroll"):
        answer = world.enroll(renewal_csr(world, device_id), *auth, path=path)
        assert_plain(answer, 403)
        assert "revoked" in answer.text
    assert len(world.certificates(device_id)) == 1


# --- where EST is served ---------------------------------------------------------------------


def test_est_is_not_served_on_the_plain_listener(world: World) -> None:
    device_id = world.new_device("plain")
    secret = world.secret(device_id)
    answer = world.curl(f"{world.server.base_url}{EST}/cacerts")
    assert_plain(answer, 404)
    answer = world.enroll(world.csr(), "-u", f"{device_id}:{secret}", url=world.server.base_url)
    assert_plain(answer, 404)
    csr = world.csr()  # the secret was not sent over plain HTTP for nothing: still good
    world.issued(world.with_secret(device_id, secret, csr), csr)


def test_the_est_port_serves_only_est(world: World) -> None:
    for path in ("/devices", f"{API}/device", "/ca.pem", "/healthz", "/.well-known/est"):
        answer = world.curl(
            f"{world.est_url}{path}", "-H", f"x-api-key: {world.account['live_key']}"
        )
        assert_plain(answer, 404)
        assert "Only /.well-known/est/" in answer.text


# --- the enrollment-secret endpoint ----------------------------------------------------------


def test_a_secret_for_another_accounts_device_is_entity_not_found(world: World) -> None:
    device_id = world.new_device("not-yours")
    other = create_account(world.server, "Globex")
    answer = httpx.post(
        f"{world.server.base_url}{API}/device/{device_id}/enrollment-secret",
        headers={"x-api-key": other["live_key"]},
    )
    assert_no_such_device(answer, device_id)
    # the test-mode key of the same account does not see live devices either
    answer = httpx.post(
        f"{world.server.base_url}{API}/device/{device_id}/enrollment-secret",
        headers={"x-api-key": world.account["test_key"]},
    )
    assert_no_such_device(answer, device_id)


def test_a_secret_needs_an_api_key(world: World) -> None:
    device_id = world.new_device("no-key")
    url = f"{world.server.base_url}{API}/device/{device_id}/enrollment-secret"
    assert_errors(httpx.post(url), 401, "invalid_api_key")
    assert_errors(httpx.post(url, headers={"x-api-key": "dr_live_nope"}), 401, "invalid_api_key")


def test_a_secret_is_shown_once_and_works_for_a_day(world: World) -> None:
    device_id = world.new_device("shown-once")
    made = world.api.post(f"{API}/device/{device_id}/enrollment-secret")
    assert made.status_code == 201, made.text
    secret, expires_at = made.json()["secret"], made.json()["expires_at"]
    assert len(secret) >= 32
    assert expires_at.endswith("Z")
    for path in (f"/device/{device_id}", f"/device/{device_id}/certificate", "/device"):
        shown = world.api.get(API + path)
        assert shown.status_code == 200, shown.text
        assert secret not in shown.text
    csr = world.csr()
    world.issued(world.with_secret(device_id, secret, csr), csr)
    for path in (f"/device/{device_id}", f"/device/{device_id}/certificate"):
        assert secret not in world.api.get(API + path).text
    assert secret not in world.server.log()
