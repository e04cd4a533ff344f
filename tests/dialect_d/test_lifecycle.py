"""The certificate lifecycle end to end, on a real `devreg serve` (SQLite and PostgreSQL) with
its client-auth listener and a real nginx in front of it (proxy mode):

- renewal by the device itself (seed 003's `POST /device/{id}/renew`, RFC 7030's rule that
  the request names exactly what the certificate being renewed names);
- revocation (`PUT /certificate/{id}/revoke`): refused from the moment the call returns, on
  connections opened before it, in every worker process;
- publication: `/ca.pem`, `/crl.pem`, `/crl.der`, checked with the `openssl` binary;
- certificates from an external client CA (`--client-ca`), and `--cert-lifetime-days`.

CSRs are made with the `openssl` binary, as a device would make them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devreg.pki.ca import CertificateAuthority
from devreg.pki.revocation import MARK_MAX_AGE_SECONDS, REBUILD_WAIT_SECONDS
from tests.conftest import service_missing
from tests.dialect_d.helpers import (
    BASE,
    CERTIFICATE_KEYS,
    UUID,
    Account,
    all_devices,
    assert_errors,
    assert_no_such_device,
    check_device,
    d_client,
    get_device,
    list_devices,
    make_device,
    make_profile,
    new_account,
    openssl,
    parse_time,
    values_of,
)
from tests.pki.test_issuing import tamper
from tests.support.nginx import NGINX, NginxFailed, nginx_in_front
from tests.support.server import RunningServer, start_server
from tests.tls.helpers import Credential, client_context, issue, other_ca

PUBLIC_URL = "https://devreg.example"
LIFETIME_DAYS = 7
TRANSPORTS = ["listener", "nginx"]
RENEW_KEYS = {"certificate_request_id", "status", "result", "certificate_id", "pem"}
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


# --- the servers -------------------------------------------------------------------------------


@dataclass
class Deployment:
    server: RunningServer
    ports: dict[str, int]  # transport -> the port a device connects to
    work: Path
    external: CertificateAuthority | None = None  # the CA given with --client-ca

    @property
    def ca_path(self) -> Path:
        return self.server.data_dir / "ca.pem"

    @property
    def ca(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.ca_path.read_bytes())

    @property
    def plain_port(self) -> int:
        return int(self.server.base_url.rsplit(":", 1)[1])

    def plain(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.base_url, timeout=30)


@contextmanager
def deploy(
    request: pytest.FixtureRequest, base: Path, *, workers: int = 1, args: tuple[str, ...] = ()
) -> Iterator[Deployment]:
    """devreg with its client-auth listener and nginx in front, on the store in
    `request.param`, for the tests of one module."""
    if NGINX is None:
        service_missing("nginx is not installed (.ci/run installs it: apt-get install nginx-light)")
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    server = start_server(
        base / "data", database_url=database_url, rate_limit=0, mtls=True, workers=workers,
        args=["--trusted-proxy", "127.0.0.1", *args],
    )  # fmt: skip
    try:
        with nginx_in_front(server, base / "nginx") as nginx_port:
            assert server.mtls_port is not None
            yield Deployment(server, {"listener": server.mtls_port, "nginx": nginx_port}, base)
    except NginxFailed as exc:
        pytest.fail(str(exc))
    finally:
        server.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def life(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """One worker, an external client CA, a public URL and a 7-day certificate lifetime."""
    base = tmp_path_factory.mktemp(f"lifecycle-{request.param}")
    external, external_path = other_ca(base / "external")
    with deploy(
        request, base, args=(
            "--client-ca", str(external_path), "--public-url", PUBLIC_URL,
            "--cert-lifetime-days", str(LIFETIME_DAYS),
        ),
    ) as deployment:  # fmt: skip
        deployment.external = external
        yield deployment


@pytest.fixture(scope="module", params=BACKENDS)
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """Two worker processes sharing both ports."""
    with deploy(request, tmp_path_factory.mktemp(f"workers-{request.param}"), workers=2) as pair:
        yield pair


@pytest.fixture
def acme(life: Deployment) -> Iterator[Account]:
    made = new_account(life.server, "Acme")
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def globex(life: Deployment) -> Iterator[Account]:
    made = new_account(life.server, "Globex")
    try:
        yield made
    finally:
        made.close()


# --- devices, certificates and clients ---------------------------------------------------------


@dataclass
class Enrolled:
    """A device's certificate and key, in files as the device keeps them."""

    device_id: str
    cert_id: str
    pem: str
    cert: Path
    key: Path

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.pem.encode())

    @property
    def serial(self) -> str:
        """As devreg shows it (serial_number): upper-case hex."""
        return format(self.certificate.serial_number, "X")


def unique(work: Path, name: str) -> Path:
    directory = work / "files"
    directory.mkdir(exist_ok=True)
    return directory / f"{name}-{uuid.uuid4().hex[:8]}"


def keep(work: Path, name: str, device_id: str, body: dict[str, Any], key: str | Path) -> Enrolled:
    stem = unique(work, name)
    cert = stem.with_suffix(".pem")
    cert.write_text(body["pem"])
    if isinstance(key, str):
        key_path = stem.with_suffix(".key")
        key_path.write_text(key)
        key_path.chmod(0o600)
    else:
        key_path = key
    return Enrolled(device_id, body["certificate_id"], body["pem"], cert, key_path)


def add_certificate(deployment: Deployment, account: Account, device_id: str) -> Enrolled:
    issued = account.live.post(f"/device/{device_id}/certificate", json={"generate_key": True})
    assert issued.status_code == 201, issued.text
    assert issued.json()["serial_number"] == format(
        x509.load_pem_x509_certificate(issued.json()["pem"].encode()).serial_number, "X"
    )
    return keep(deployment.work, "device", device_id, issued.json(), issued.json()["private_key"])


def enroll(deployment: Deployment, account: Account, name: str) -> Enrolled:
    """A device of the account's default profile (every device_api_allow_* flag true) and a
    certificate with a key devreg made."""
    return add_certificate(deployment, account, make_device(account.live, name)["id"])


def device_client(
    deployment: Deployment, transport: str, cert: Path, key: Path | None = None
) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(deployment.ca_path))
    context.load_cert_chain(cert, key)
    port = deployment.ports[transport]
    return httpx.Client(base_url=f"https://localhost:{port}{BASE}", verify=context, timeout=30)


def same_connection(first: httpx.Response, second: httpx.Response) -> bool:
    """Both answers came over one TCP connection (httpcore's stream, and our port)."""
    one, two = first.extensions["network_stream"], second.extensions["network_stream"]
    return bool(one is two and local_port(first) == local_port(second))


def local_port(response: httpx.Response) -> int:
    port: int = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    return port


def assert_denied(response: httpx.Response, words: str) -> None:
    assert_errors(response, 403, "access_denied", mentions=[words])


def listed(account: Account, device_id: str) -> list[dict[str, Any]]:
    answer = account.live.get(f"/device/{device_id}/certificate")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["total"] == len(body["records"])
    records: list[dict[str, Any]] = body["records"]
    for record in records:
        assert set(record) == CERTIFICATE_KEYS, record
    return records


def revoke(account: Account, cert_id: str, reason: str = "keyCompromise") -> httpx.Response:
    return account.live.put(f"/certificate/{cert_id}/revoke", json={"reason": reason})


def run_openssl(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def openssl_verify(deployment: Deployment, cert: Path, crl: Path | None = None) -> str:
    """`openssl verify` as a relying party runs it; returns its output, passed or not."""
    crl_args = ["-crl_check", "-CRLfile", str(crl)] if crl else []
    done = run_openssl(
        deployment.work, "verify", "-CAfile", str(deployment.ca_path), "-purpose", "sslclient",
        *crl_args, str(cert),
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert (done.returncode == 0) == output.strip().endswith(f"{cert}: OK"), output
    return output


# --- renewal (seed 003, over client authentication) --------------------------------------------


def renewal_csr(
    work: Path, subject: str, san: str | None, key: str | Path = "ec"
) -> tuple[Path, str]:
    """A CSR made with openssl: a new P-256 key ("ec"), a new RSA 1024 one ("rsa1024"), or
    the key in the file `key`."""
    stem = unique(work, "renewal")
    csr = stem.with_suffix(".csr")
    if isinstance(key, Path):
        key_path, key_args = key, ["-key", str(key)]
    else:
        key_path = stem.with_suffix(".key")
        new = ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key == "ec" else ["rsa:1024"]
        key_args = ["-newkey", *new, "-nodes", "-keyout", str(key_path)]
    args = ["req", "-new", *key_args, "-out", str(csr), "-subj", subject]
    if san is not None:
        args += ["-addext", f"subjectAltName={san}"]
    openssl(work, *args)
    return key_path, csr.read_text()


def subject_of(device_id: str) -> str:
    return f"/O=devreg/CN={device_id}"


def san_of(device_id: str) -> str:
    return f"URI:urn:uuid:{device_id}"


def renew(client: httpx.Client, device_id: str, csr: str) -> httpx.Response:
    return client.post(f"/device/{device_id}/renew", json={"csr": csr})


def uris(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.UniformResourceIdentifier)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_device_renews_its_certificate_and_both_work(
    life: Deployment, acme: Account, transport: str
) -> None:
    old = enroll(life, acme, f"renew-{transport}")
    key, csr = renewal_csr(life.work, subject_of(old.device_id), san_of(old.device_id))
    with device_client(life, transport, old.cert, old.key) as device:
        answer = renew(device, old.device_id, csr)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == RENEW_KEYS, body
    assert (body["status"], body["result"]) == ("AUTO_APPROVED", "SUCCESS")
    assert UUID.match(body["certificate_request_id"]) and UUID.match(body["certificate_id"])
    assert body["certificate_id"] != old.cert_id
    new = keep(life.work, "renewed", old.device_id, body, key)
    cert = new.certificate
    # The same names as the certificate renewed, devreg's CA, the CSR's key, a new serial.
    assert cert.subject == old.certificate.subject
    assert uris(cert) == uris(old.certificate) == [f"urn:uuid:{old.device_id}"]
    assert cert.issuer == life.ca.subject
    assert cert.serial_number != old.certificate.serial_number
    assert openssl(life.work, "x509", "-in", str(new.cert), "-pubkey", "-noout") == openssl(
        life.work, "pkey", "-in", str(key), "-pubout"
    )
    assert openssl_verify(life, new.cert).strip() == f"{new.cert}: OK"
    # Recorded on the device, after the one it renews.
    records = listed(acme, old.device_id)
    assert [r["certificate_id"] for r in records] == [old.cert_id, body["certificate_id"]]
    assert records[1]["pem"] == body["pem"]
    assert records[1]["serial_number"] == format(cert.serial_number, "X")
    assert (records[1]["status"], records[1]["issuer"]) == ("ACTIVE", "devreg")
    assert records[0]["status"] == "ACTIVE"  # the old one is not revoked by renewing
    # The new certificate works, and so does the old one until it expires or is revoked.
    for held in (new, old):
        with device_client(life, transport, held.cert, held.key) as device:
            read = device.get(f"/device/{old.device_id}")
            assert read.status_code == 200, read.text
            assert read.json()["id"] == old.device_id


def test_renewal_may_keep_the_key_and_a_renewed_certificate_renews_again(
    life: Deployment, acme: Account
) -> None:
    first = enroll(life, acme, "renew-twice")
    _, same_key = renewal_csr(
        life.work, subject_of(first.device_id), san_of(first.device_id), first.key
    )
    with device_client(life, "listener", first.cert, first.key) as device:
        answer = renew(device, first.device_id, same_key)
    assert answer.status_code == 200, answer.text
    second = keep(life.work, "second", first.device_id, answer.json(), first.key)
    assert second.certificate.public_key() == first.certificate.public_key()
    key, csr = renewal_csr(life.work, subject_of(first.device_id), san_of(first.device_id))
    with device_client(life, "listener", second.cert, second.key) as device:
        again = renew(device, first.device_id, csr)
    assert again.status_code == 200, again.text
    third = keep(life.work, "third", first.device_id, again.json(), key)
    assert [r["certificate_id"] for r in listed(acme, first.device_id)] == [
        first.cert_id, second.cert_id, third.cert_id,
    ]  # fmt: skip


@pytest.mark.parametrize(
    "case", ["flag off", "disabled", "revoked", "another device", "API key, no certificate"]
)
def test_renewal_is_refused_and_records_nothing(life: Deployment, acme: Account, case: str) -> None:
    held = enroll(life, acme, "refused")
    target = held.device_id
    if case == "flag off":
        flag = "device_api_allow_renew_certificate"
        changed = acme.live.put(f"/device/{target}", json={"fields": [], flag: False})
        assert changed.status_code == 201, changed.text
        words = f"{flag} is false"
    elif case == "disabled":
        assert acme.live.put(f"/device/{target}/disable").status_code == 200
        words = "not active"
    elif case == "revoked":
        assert revoke(acme, held.cert_id).status_code == 200
        words = "revoked"
    elif case == "another device":
        target = make_device(acme.live, "someone else")["id"]
        words = "does not belong"
    else:
        words = "client certificate"
    _, csr = renewal_csr(life.work, subject_of(target), san_of(target))
    before = {d: listed(acme, d) for d in {held.device_id, target}}
    if case == "API key, no certificate":
        answer = acme.live.post(f"/device/{target}/renew", json={"csr": csr})
    else:
        with device_client(life, "listener", held.cert, held.key) as device:
            answer = renew(device, target, csr)
    assert_denied(answer, words)
    assert {d: listed(acme, d) for d in before} == before


def csr_with_two_subject_alt_names(device_id: str) -> str:
    """A CSR, correctly signed, that carries the subjectAltName extension twice (RFC 5280
    forbids it): made with an issuerAltName turned into a second subjectAltName, signed
    again (Ed25519: the signature keeps its length)."""
    key = ed25519.Ed25519PrivateKey.generate()
    names = [x509.UniformResourceIdentifier(f"urn:uuid:{device_id}")]
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "devreg"),
            x509.NameAttribute(NameOID.COMMON_NAME, device_id),
        ]
    )
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.IssuerAlternativeName(names), critical=False)
        .sign(key, None)
    )
    der, tbs = csr.public_bytes(serialization.Encoding.DER), csr.tbs_certrequest_bytes
    issuer_alt_name = bytes([0x06, 0x03, 0x55, 0x1D, 0x12])  # OID 2.5.29.18
    changed = tbs.replace(issuer_alt_name, issuer_alt_name[:-1] + b"\x11")  # 2.5.29.17
    assert changed != tbs and der.endswith(csr.signature)
    forged = der.replace(tbs, changed)[: -len(csr.signature)] + key.sign(changed)
    return x509.load_der_x509_csr(forged).public_bytes(serialization.Encoding.PEM).decode()


SUBJECT, SAN = "/O=devreg/CN={d}", "URI:urn:uuid:{d}"


@pytest.mark.parametrize(
    ("subject", "san", "key", "mentions"),
    [
        ("/O=devreg/CN={o}", SAN, "ec", ["subject", "CN={d},O=devreg", "RFC 7030"]),
        ("/CN={d}", SAN, "ec", ["subject"]),
        ("/CN={d}/O=devreg", SAN, "ec", ["subject"]),
        ("/C=DE/O=devreg/CN={d}", SAN, "ec", ["subject"]),
        (SUBJECT, "URI:urn:uuid:{o}", "ec", ["subjectAltName", "RFC 7030"]),
        (SUBJECT, None, "ec", ["subjectAltName"]),
        (SUBJECT, SAN + ",DNS:evil.example", "ec", ["subjectAltName"]),
        (SUBJECT, SAN, "rsa1024", ["RSA", "1024", "too weak"]),
        (SUBJECT, SAN, "tampered", ["signature"]),
        (SUBJECT, SAN, "a certificate", ["PKCS#10"]),
        (SUBJECT, SAN, "missing", ["csr"]),
        (SUBJECT, SAN, "two SANs", ["csr", "extension"]),
    ],
    ids=[
        "subject of another device",
        "subject without O",
        "subject in another order",
        "subject with more",
        "SAN of another device",
        "no SAN",
        "more SAN",
        "RSA 1024",
        "bad signature",
        "not a CSR",
        "no csr",
        "SAN twice",
    ],
)
def test_a_bad_renewal_request_is_400_naming_the_problem_and_records_nothing(
    life: Deployment, acme: Account, subject: str, san: str | None, key: str, mentions: list[str]
) -> None:
    held = enroll(life, acme, "bad-renewal")
    names = {"d": held.device_id, "o": str(uuid.uuid4())}
    _, csr = renewal_csr(
        life.work, subject.format(**names), None if san is None else san.format(**names),
        "rsa1024" if key == "rsa1024" else "ec",
    )  # fmt: skip
    body: dict[str, Any] = {"csr": csr}
    if key == "tampered":
        body = {"csr": tamper(csr)}
    elif key == "a certificate":
        body = {"csr": held.pem}
    elif key == "missing":
        body = {}
    elif key == "two SANs":
        body = {"csr": csr_with_two_subject_alt_names(held.device_id)}
    before = listed(acme, held.device_id)
    with device_client(life, "listener", held.cert, held.key) as device:
        answer = device.post(f"/device/{held.device_id}/renew", json=body)
        words = [word.format(**names) for word in mentions]
        assert_errors(answer, 400, "invalid_input", mentions=words)
        # Nothing recorded, and the certificate held still works.
        assert listed(acme, held.device_id) == before
        assert device.get(f"/device/{held.device_id}").status_code == 200


# --- revocation --------------------------------------------------------------------------------


def check_revoked(body: dict[str, Any], cert_id: str, reason: str) -> dt.datetime:
    assert set(body) == CERTIFICATE_KEYS, body
    assert body["certificate_id"] == cert_id
    assert (body["status"], body["revocation_reason"]) == ("REVOKED", reason)
    revoked_at = parse_time(body["revoked_at"])
    now = dt.datetime.now(dt.UTC)
    assert now - dt.timedelta(minutes=5) <= revoked_at <= now
    return revoked_at


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_revoked_certificate_is_refused_at_once_even_on_an_open_connection(
    life: Deployment, acme: Account, transport: str
) -> None:
    held = enroll(life, acme, f"revoked-{transport}")
    path = f"/device/{held.device_id}"
    with device_client(life, transport, held.cert, held.key) as device:
        first = device.get(path)
        assert first.status_code == 200, first.text
        assert "close" not in first.headers.get("connection", "")
        revoked = revoke(acme, held.cert_id)
        assert revoked.status_code == 200, revoked.text
        check_revoked(revoked.json(), held.cert_id, "keyCompromise")
        second = device.get(path)
        assert same_connection(first, second)
        assert_denied(second, "revoked")
        before = acme.live.get(path).json()
        assert_denied(device.put(path, json={"device_identifier": "changed"}), "revoked")
        assert acme.live.get(path).json() == before
    (record,) = listed(acme, held.device_id)
    assert record == revoked.json()
    # A new connection is refused too.
    with device_client(life, transport, held.cert, held.key) as device:
        assert_denied(device.get(path), "revoked")


class RawConnection:
    """HTTP/1.1 over one TLS socket, request after request: the connection is the same one
    by construction."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.tls = context.wrap_socket(raw, server_hostname="localhost")
        self.buffer = b""

    def get(self, path: str) -> tuple[int, dict[str, str], Any]:
        self.tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in lines)}
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            self._read()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, json.loads(body)

    def _read(self) -> None:
        chunk = self.tls.recv(65536)
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.tls.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_revocation_between_two_requests_on_one_raw_tls_connection(
    life: Deployment, acme: Account, transport: str
) -> None:
    held = enroll(life, acme, f"raw-{transport}")
    context = client_context(life.ca_path)
    context.load_cert_chain(held.cert, held.key)
    connection = RawConnection(life.ports[transport], context)
    try:
        path = f"{BASE}/device/{held.device_id}"
        status, headers, body = connection.get(path)
        assert status == 200 and body["id"] == held.device_id
        assert "close" not in headers.get("connection", "")
        assert revoke(acme, held.cert_id, "superseded").status_code == 200
        status, _, body = connection.get(path)
        assert status == 403, body
        assert body["errors"][0]["code"] == "access_denied"
        assert "revoked" in body["errors"][0]["message"]
    finally:
        connection.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_disabling_refuses_at_once_on_an_open_connection(
    life: Deployment, acme: Account, transport: str
) -> None:
    held = enroll(life, acme, f"disable-{transport}")
    path = f"/device/{held.device_id}"
    with device_client(life, transport, held.cert, held.key) as device:
        first = device.get(path)
        assert first.status_code == 200, first.text
        assert acme.live.put(f"{path}/disable").status_code == 200
        refused = device.get(path)
        assert same_connection(first, refused)
        assert_denied(refused, "not active")
        assert acme.live.put(f"{path}/enable").status_code == 200
        again = device.get(path)
        assert same_connection(first, again)
        assert again.status_code == 200, again.text
    (record,) = listed(acme, held.device_id)
    assert record["status"] == "ACTIVE"  # disabling the device does not revoke its certificate


def crl_of(client: httpx.Client, kind: str = "pem") -> x509.CertificateRevocationList:
    answer = client.get(f"/crl.{kind}")
    assert answer.status_code == 200, answer.text
    if kind == "pem":
        assert answer.headers["content-type"] == "application/x-pem-file"
        return x509.load_pem_x509_crl(answer.content)
    assert answer.headers["content-type"] == "application/pkix-crl"
    return x509.load_der_x509_crl(answer.content)


def crl_listing(
    client: httpx.Client, serials: list[str], kind: str = "pem"
) -> x509.CertificateRevocationList:
    """The CRL once it lists every one of `serials`: a revocation shows in it within
    MARK_MAX_AGE_SECONDS (and the rebuild), not at once (refusal over mTLS is at once)."""
    deadline = time.monotonic() + MARK_MAX_AGE_SECONDS + REBUILD_WAIT_SECONDS + 10
    while True:
        crl = crl_of(client, kind)
        found = [s for s in serials if crl.get_revoked_certificate_by_serial_number(int(s, 16))]
        if len(found) == len(serials) or time.monotonic() > deadline:
            return crl
        time.sleep(0.1)


def crl_number(crl: x509.CertificateRevocationList) -> int:
    number: int = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    return number


def crl_reason(crl: x509.CertificateRevocationList, serial: str) -> x509.ReasonFlags | None:
    """The reason the CRL gives for `serial` (None: listed without one); KeyError when the
    serial is not listed."""
    entry = crl.get_revoked_certificate_by_serial_number(int(serial, 16))
    if entry is None:
        raise KeyError(serial)
    try:
        reason: x509.ReasonFlags = entry.extensions.get_extension_for_class(
            x509.CRLReason
        ).value.reason
    except x509.ExtensionNotFound:
        return None
    return reason


REASONS = {
    # RFC 5280 name as sent (any case) -> as stored, and the CRL's reason code
    "unspecified": ("unspecified", None),
    "KEYCOMPROMISE": ("keyCompromise", x509.ReasonFlags.key_compromise),
    "cacompromise": ("cACompromise", x509.ReasonFlags.ca_compromise),
    "affiliationChanged": ("affiliationChanged", x509.ReasonFlags.affiliation_changed),
    "Superseded": ("superseded", x509.ReasonFlags.superseded),
    "cessationOfOperation": ("cessationOfOperation", x509.ReasonFlags.cessation_of_operation),
    "certificateHold": ("certificateHold", x509.ReasonFlags.certificate_hold),
    "PrivilegeWithdrawn": ("privilegeWithdrawn", x509.ReasonFlags.privilege_withdrawn),
    "aACompromise": ("aACompromise", x509.ReasonFlags.aa_compromise),
}


def test_every_rfc_5280_reason_in_any_case_is_recorded_and_published(
    life: Deployment, acme: Account
) -> None:
    device_id = make_device(acme.live, "reasons")["id"]
    revoked: dict[str, tuple[str, x509.ReasonFlags | None]] = {}
    for given, (name, code) in REASONS.items():
        held = add_certificate(life, acme, device_id)
        answer = revoke(acme, held.cert_id, given)
        assert answer.status_code == 200, answer.text
        check_revoked(answer.json(), held.cert_id, name)
        revoked[held.serial] = (name, code)
    # No body at all: the reason is unspecified.
    held = add_certificate(life, acme, device_id)
    answer = acme.live.put(f"/certificate/{held.cert_id}/revoke")
    assert answer.status_code == 200, answer.text
    check_revoked(answer.json(), held.cert_id, "unspecified")
    revoked[held.serial] = ("unspecified", None)
    records = listed(acme, device_id)
    assert {r["serial_number"]: r["revocation_reason"] for r in records} == {
        serial: name for serial, (name, _) in revoked.items()
    }
    with life.plain() as plain:
        crl = crl_listing(plain, list(revoked))
    # unspecified is listed without a reason code (RFC 5280 5.3.1: SHOULD be absent)
    assert {serial: crl_reason(crl, serial) for serial in revoked} == {
        serial: code for serial, (_, code) in revoked.items()
    }


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({"reason": "bogus"}, ["reason", "keyCompromise", "cessationOfOperation"]),
        ({"reason": "removeFromCRL"}, ["reason"]),
        ({"reason": ""}, ["reason"]),
        ({"reason": 1}, ["reason"]),
        ({"reason": None}, ["reason"]),
        ({"reason": "keyCompromise", "when": "now"}, ["when"]),
    ],
    ids=["unknown", "removeFromCRL", "empty", "number", "null", "unknown field"],
)
def test_a_bad_revocation_request_is_400_and_changes_nothing(
    life: Deployment, acme: Account, body: dict[str, Any], mentions: list[str]
) -> None:
    held = enroll(life, acme, "bad-revocation")
    answer = acme.live.put(f"/certificate/{held.cert_id}/revoke", json=body)
    assert_errors(answer, 400, "invalid_input", mentions=mentions)
    (record,) = listed(acme, held.device_id)
    assert (record["status"], record["revoked_at"], record["revocation_reason"]) == (
        "ACTIVE", None, None,
    )  # fmt: skip
    with device_client(life, "listener", held.cert, held.key) as device:
        assert device.get(f"/device/{held.device_id}").status_code == 200


def test_revoking_what_is_not_the_callers_certificate_is_entity_not_found(
    life: Deployment, acme: Account, globex: Account
) -> None:
    held = enroll(life, acme, "not-yours")
    unknown = str(uuid.uuid4())
    for client, cert_id in [
        (acme.live, unknown),  # no such certificate
        (acme.live, held.device_id),  # a device's id is not a certificate's
        (acme.live, "not-a-uuid"),
        (globex.live, held.cert_id),  # another account's
        (acme.test, held.cert_id),  # a live device's certificate, with a test key
    ]:
        answer = client.put(f"/certificate/{cert_id}/revoke", json={"reason": "keyCompromise"})
        message = assert_errors(answer, 400, "entity_not_found", mentions=[cert_id])
        assert message == f"Certificate with id {cert_id} does not exist"
    assert_errors(acme.anon.put(f"/certificate/{held.cert_id}/revoke"), 401, "invalid_api_key")
    (record,) = listed(acme, held.device_id)
    assert record["status"] == "ACTIVE"
    with device_client(life, "listener", held.cert, held.key) as device:
        assert device.get(f"/device/{held.device_id}").status_code == 200


def test_revoking_again_is_idempotent(life: Deployment, acme: Account) -> None:
    held = enroll(life, acme, "twice")
    first = revoke(acme, held.cert_id, "keyCompromise")
    assert first.status_code == 200, first.text
    time.sleep(1.1)  # revoked_at is shown to the second: a new one would differ
    for reason in ("keyCompromise", "superseded"):
        again = revoke(acme, held.cert_id, reason)
        assert again.status_code == 200, again.text
        assert again.json() == first.json()  # the same revoked_at and reason
    with life.plain() as plain:
        crl = crl_listing(plain, [held.serial])
    (entry,) = [r for r in crl if r.serial_number == int(held.serial, 16)]
    assert entry.revocation_date_utc == parse_time(first.json()["revoked_at"])
    assert crl_reason(crl, held.serial) == x509.ReasonFlags.key_compromise


def test_deleting_a_device_revokes_its_certificates(life: Deployment, acme: Account) -> None:
    first = enroll(life, acme, "deleted")
    second = add_certificate(life, acme, first.device_id)
    path = f"/device/{first.device_id}"
    with device_client(life, "listener", first.cert, first.key) as device:
        before = device.get(path)
        assert before.status_code == 200, before.text
        assert acme.live.delete(path).status_code == 200
        after = device.get(path)
        assert same_connection(before, after)
        assert_denied(after, "revoked")
    with device_client(life, "nginx", second.cert, second.key) as device:
        assert_denied(device.get(path), "revoked")
    # The device is gone for the API ...
    assert_errors(acme.live.get(f"{path}/certificate"), 400, "entity_not_found")
    # ... but its certificates are revoked: asking again answers the revocation made, and
    # the CRL lists them with reason cessationOfOperation.
    for held in (first, second):
        answer = revoke(acme, held.cert_id)
        assert answer.status_code == 200, answer.text
        check_revoked(answer.json(), held.cert_id, "cessationOfOperation")
    with life.plain() as plain:
        crl = crl_listing(plain, [first.serial, second.serial])
    for held in (first, second):
        assert crl_reason(crl, held.serial) == x509.ReasonFlags.cessation_of_operation
    crl_path = unique(life.work, "crl").with_suffix(".pem")
    crl_path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    assert "certificate revoked" in openssl_verify(life, first.cert, crl_path)
    # Restored, the device is back, but its certificates stay revoked.
    restored = acme.live.put(f"{path}/restore")
    assert restored.status_code == 200, restored.text
    assert restored.json()["status"] == "ACTIVE"
    listed_certs = acme.live.get(f"{path}/certificate").json()["records"]
    assert {c["status"] for c in listed_certs} == {"REVOKED"}
    for transport, held in (("listener", first), ("nginx", second)):
        with device_client(life, transport, held.cert, held.key) as device:
            assert_denied(device.get(path), "revoked")


# --- publication: the CA certificate and its CRL -----------------------------------------------


def test_the_ca_certificate_is_published(life: Deployment) -> None:
    with life.plain() as plain:
        answer = plain.get("/ca.pem")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-pem-file"
    assert answer.content == life.ca_path.read_bytes()
    ca = x509.load_pem_x509_certificate(answer.content)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.crl_sign


def check_crl(life: Deployment, crl: x509.CertificateRevocationList) -> None:
    ca = life.ca
    assert crl.issuer == ca.subject
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    now = dt.datetime.now(dt.UTC)
    assert crl.last_update_utc <= now + dt.timedelta(seconds=5)
    assert crl.next_update_utc is not None and crl.next_update_utc > now


def openssl_crl_serials(life: Deployment, crl_path: Path, *form: str) -> dict[int, str]:
    """Serial -> reason, as `openssl crl -text` shows them."""
    text = openssl(life.work, "crl", *form, "-in", str(crl_path), "-noout", "-text")
    found: dict[int, str] = {}
    for block in text.split("Serial Number: ")[1:]:
        serial, _, rest = block.partition("\n")
        reason = re.search(r"X509v3 CRL Reason Code:\s*\n\s*(.+)", rest.split("Serial")[0])
        found[int(serial.strip(), 16)] = reason.group(1).strip() if reason else ""
    return found


def test_each_revocation_is_published_in_a_crl_signed_by_the_ca(
    life: Deployment, acme: Account
) -> None:
    compromised = enroll(life, acme, "compromised")
    good = add_certificate(life, acme, compromised.device_id)
    with life.plain() as plain:
        before = crl_of(plain)
        check_crl(life, before)
        assert before.get_revoked_certificate_by_serial_number(int(compromised.serial, 16)) is None
        # openssl accepts both certificates while neither is revoked.
        crl_path = unique(life.work, "crl").with_suffix(".pem")
        crl_path.write_bytes(before.public_bytes(serialization.Encoding.PEM))
        for held in (compromised, good):
            assert openssl_verify(life, held.cert, crl_path).strip() == f"{held.cert}: OK"

        assert revoke(acme, compromised.cert_id).status_code == 200
        after = crl_listing(plain, [compromised.serial])
        pem_answer, der_answer = plain.get("/crl.pem"), plain.get("/crl.der")
    check_crl(life, after)
    assert crl_number(after) > crl_number(before)
    assert crl_reason(after, compromised.serial) == x509.ReasonFlags.key_compromise
    assert after.get_revoked_certificate_by_serial_number(int(good.serial, 16)) is None
    # /crl.der is the same CRL as /crl.pem
    assert (
        x509.load_pem_x509_crl(pem_answer.content).public_bytes(serialization.Encoding.DER)
        == der_answer.content
    )
    pem_path, der_path = unique(life.work, "crl").with_suffix(".pem"), crl_path.with_suffix(".der")
    pem_path.write_bytes(pem_answer.content)
    der_path.write_bytes(der_answer.content)
    # openssl's view: signed by the CA, the serial listed with its reason, and verification
    # with the CRL accepts the good certificate and rejects the revoked one.
    for path, form in [(pem_path, []), (der_path, ["-inform", "DER"])]:
        done = run_openssl(
            life.work, "crl", *form, "-in", str(path), "-CAfile", str(life.ca_path), "-noout",
            "-verify",
        )  # fmt: skip
        assert done.returncode == 0 and "verify OK" in done.stdout + done.stderr, done
        serials = openssl_crl_serials(life, path, *form)
        assert serials[int(compromised.serial, 16)] == "Key Compromise"
        assert int(good.serial, 16) not in serials
    assert openssl_verify(life, good.cert, pem_path).strip() == f"{good.cert}: OK"
    refused = openssl_verify(life, compromised.cert, pem_path)
    assert "certificate revoked" in refused
    # The next revocation makes a newer CRL again, listing both.
    assert revoke(acme, good.cert_id, "superseded").status_code == 200
    with life.plain() as plain:
        latest = crl_listing(plain, [compromised.serial, good.serial], "der")
    check_crl(life, latest)
    assert crl_number(latest) > crl_number(after)
    assert crl_reason(latest, compromised.serial) == x509.ReasonFlags.key_compromise
    assert crl_reason(latest, good.serial) == x509.ReasonFlags.superseded


def crl_points(cert: x509.Certificate) -> list[str]:
    ext = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    return [name.value for point in ext for name in point.full_name or []]


def test_issued_certificates_name_the_crl_and_live_the_configured_days(
    life: Deployment, acme: Account
) -> None:
    """--public-url https://devreg.example and --cert-lifetime-days 7."""
    device_id = make_device(acme.live, "policy")["id"]
    made = add_certificate(life, acme, device_id)  # key made by devreg
    _, csr = renewal_csr(life.work, "/CN=anything", None)
    from_csr = acme.live.post(f"/device/{device_id}/certificate", json={"csr": csr})
    assert from_csr.status_code == 201, from_csr.text
    _, renewal = renewal_csr(life.work, subject_of(device_id), san_of(device_id))
    with device_client(life, "listener", made.cert, made.key) as device:
        renewed = renew(device, device_id, renewal)
    assert renewed.status_code == 200, renewed.text
    now = dt.datetime.now(dt.UTC)
    records = listed(acme, device_id)
    assert len(records) == 3
    for record in records:
        cert = x509.load_pem_x509_certificate(record["pem"].encode())
        assert crl_points(cert) == [f"{PUBLIC_URL}/crl.der"]
        lifetime = cert.not_valid_after_utc - now
        assert abs(lifetime - dt.timedelta(days=LIFETIME_DAYS)) < dt.timedelta(minutes=5)
        assert now - dt.timedelta(minutes=10) <= cert.not_valid_before_utc <= now
        assert parse_time(record["not_after"]) == cert.not_valid_after_utc.replace(microsecond=0)
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    text = openssl(life.work, "x509", "-in", str(made.cert), "-noout", "-text")
    assert "X509v3 CRL Distribution Points" in text
    assert f"URI:{PUBLIC_URL}/crl.der" in text


# --- certificates from an external client CA (--client-ca) -------------------------------------


def external_credential(life: Deployment, name: str, **options: Any) -> Credential:
    assert life.external is not None
    return issue(life.external, unique(life.work, "external"), name, **options)


def external_client(life: Deployment, credential: Credential) -> httpx.Client:
    return device_client(life, "listener", credential.cert_path, credential.key_path)


def register(account: Account, device_id: str, pem: str) -> httpx.Response:
    return account.live.post(f"/device/{device_id}/certificate", json={"pem": pem})


def test_an_external_certificate_authenticates_its_device_once_registered(
    life: Deployment, acme: Account
) -> None:
    assert life.external is not None
    device_id = make_device(acme.live, "external")["id"]
    path = f"/device/{device_id}"
    credential = external_credential(life, "sensor-1")
    with external_client(life, credential) as device:
        # The TLS handshake accepts it (its CA is configured) but no device holds it yet.
        assert_denied(device.get(path), "not registered")
        answer = register(acme, device_id, credential.pem)
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert set(body) == CERTIFICATE_KEYS  # no private_key: devreg never had it
        cert = credential.certificate
        der = cert.public_bytes(serialization.Encoding.DER)
        assert body["issuer"] == life.external.certificate.subject.rfc4514_string()
        assert body["serial_number"] == format(cert.serial_number, "X")
        assert body["thumbprint"] == hashlib.sha256(der).hexdigest().upper()
        assert body["pem"] == credential.pem
        assert parse_time(body["not_after"]) == cert.not_valid_after_utc.replace(microsecond=0)
        assert (body["status"], body["revoked_at"]) == ("ACTIVE", None)
        assert listed(acme, device_id) == [body]
        read = device.get(path)
        assert read.status_code == 200, read.text
        assert read.json()["id"] == device_id
        written = device.put(path, json={"device_identifier": "renamed by itself"})
        assert written.status_code == 201, written.text
        # The external CA's certificates do not renew here.
        _, csr = renewal_csr(life.work, subject_of(device_id), san_of(device_id))
        refused = renew(device, device_id, csr)
        assert_errors(refused, 400, "invalid_input", mentions=["issued by devreg"])
    assert len(listed(acme, device_id)) == 1
    # Another certificate of the same CA, never registered, is refused.
    with external_client(life, external_credential(life, "sensor-2")) as stranger:
        assert_denied(stranger.get(path), "not registered")


def test_external_certificates_that_cannot_be_registered(
    life: Deployment, acme: Account, globex: Account
) -> None:
    device_id = make_device(acme.live, "external-refused")["id"]
    unknown_ca, _ = other_ca(unique(life.work, "unconfigured"))
    strange = issue(unknown_ca, unique(life.work, "strange"), "strange")
    ours = enroll(life, acme, "ours")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    expired = external_credential(life, "expired", lifetime=dt.timedelta(days=1), now=past)
    server_cert = external_credential(life, "server", client=False)
    for pem, mentions in [
        (strange.pem, ["client CA"]),  # a CA devreg was not configured with
        (ours.pem, ["client CA"]),  # devreg's own: issued here, not registered
        (expired.pem, ["client CA"]),
        (server_cert.pem, ["client CA"]),  # not for client authentication
        ("garbage", ["pem", "X.509"]),
    ]:
        assert_errors(register(acme, device_id, pem), 400, "invalid_input", mentions=mentions)
    both = acme.live.post(
        f"/device/{device_id}/certificate", json={"pem": strange.pem, "generate_key": True}
    )
    assert_errors(both, 400, "invalid_input", mentions=["pem", "csr"])
    assert listed(acme, device_id) == []
    # One certificate, one device.
    credential = external_credential(life, "shared")
    assert register(acme, device_id, credential.pem).status_code == 201
    again = register(acme, device_id, credential.pem)
    assert_errors(again, 400, "invalid_input", mentions=["already registered"])
    second = make_device(acme.live, "second")["id"]
    elsewhere = make_device(globex.live, "globex")["id"]
    for account, other_device in [(acme, second), (globex, elsewhere)]:
        taken = register(account, other_device, credential.pem)
        assert_errors(taken, 400, "invalid_input", mentions=["already belongs"])
    assert listed(acme, second) == []
    assert len(listed(acme, device_id)) == 1
    # Not for a device the key does not see.
    with_test_key = acme.test.post(
        f"/device/{device_id}/certificate", json={"pem": external_credential(life, "t").pem}
    )
    assert_errors(with_test_key, 400, "entity_not_found")


def test_an_external_certificate_is_revoked_like_ours(life: Deployment, acme: Account) -> None:
    device_id = make_device(acme.live, "external-revoked")["id"]
    credential = external_credential(life, "to-revoke")
    registered = register(acme, device_id, credential.pem)
    assert registered.status_code == 201, registered.text
    cert_id = registered.json()["certificate_id"]
    path = f"/device/{device_id}"
    with external_client(life, credential) as device:
        first = device.get(path)
        assert first.status_code == 200, first.text
        answer = revoke(acme, cert_id, "privilegeWithdrawn")
        assert answer.status_code == 200, answer.text
        check_revoked(answer.json(), cert_id, "privilegeWithdrawn")
        second = device.get(path)
        assert same_connection(first, second)
        assert_denied(second, "revoked")
    # devreg's CRL is for devreg's CA: another CA's certificate is not listed in it.
    with life.plain() as plain:
        crl = crl_of(plain)
    assert (
        crl.get_revoked_certificate_by_serial_number(credential.certificate.serial_number) is None
    )


# --- two worker processes ------------------------------------------------------------------------


def children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def serving_process(server: RunningServer, server_port: int, client_port: int) -> int:
    """The worker process holding the server side of the TCP connection from `client_port`
    (found through /proc: the socket's inode, then whose file descriptor it is)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1].split(":")[1], fields[2].split(":")[1]
        if int(local, 16) == server_port and int(remote, 16) == client_port:
            inodes.add(fields[9])
    assert len(inodes) == 1, (server_port, client_port, inodes)
    target = f"socket:[{inodes.pop()}]"
    for pid in children(server.process.pid):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    raise AssertionError(f"no worker holds the connection from port {client_port}")


def one_per_worker(
    pair: Deployment, make: Callable[[], httpx.Client], port: int, path: str
) -> dict[int, tuple[httpx.Client, httpx.Response]]:
    """A kept-alive client on each of the two workers, with its first answer (from `path`):
    new connections are opened until both workers hold one."""
    found: dict[int, tuple[httpx.Client, httpx.Response]] = {}
    deadline = time.monotonic() + 30
    while len(found) < 2:
        assert time.monotonic() < deadline, f"every connection went to {set(found)}"
        client = make()
        answer = client.get(path)
        assert answer.status_code == 200, answer.text
        pid = serving_process(pair.server, port, local_port(answer))
        if pid in found:
            client.close()
        else:
            found[pid] = (client, answer)
    return found


def served_by(pair: Deployment, answer: httpx.Response, port: int) -> int:
    return serving_process(pair.server, port, local_port(answer))


@pytest.mark.parametrize("revoker", [0, 1], ids=["first worker revokes", "second worker revokes"])
def test_with_two_workers_a_revocation_in_either_holds_in_both(
    pair: Deployment, revoker: int
) -> None:
    account = new_account(pair.server, "Acme")
    held = enroll(pair, account, "two-workers")
    path = f"/device/{held.device_id}"
    listener, plain = pair.ports["listener"], pair.plain_port
    apis = one_per_worker(pair, lambda: d_client(pair.server, account.live_key), plain, "/division")
    devices = one_per_worker(
        pair, lambda: device_client(pair, "listener", held.cert, held.key), listener, path
    )
    crls = one_per_worker(pair, pair.plain, plain, "/crl.pem")  # each worker has built one
    via_nginx = device_client(pair, "nginx", held.cert, held.key)
    clients = [c for group in (apis, devices, crls) for c, _ in group.values()] + [via_nginx]
    try:
        assert set(apis) == set(devices) == set(crls) and len(apis) == 2
        assert via_nginx.get(path).status_code == 200
        worker = sorted(apis)[revoker]
        api = apis[worker][0]
        answer = api.put(f"/certificate/{held.cert_id}/revoke", json={"reason": "keyCompromise"})
        assert answer.status_code == 200, answer.text
        assert served_by(pair, answer, plain) == worker
        for pid, (device, first) in devices.items():
            refused = device.get(path)
            assert same_connection(first, refused) and served_by(pair, refused, listener) == pid
            assert_denied(refused, "revoked")
        assert_denied(via_nginx.get(path), "revoked")
        # Each worker's CRL lists it within MARK_MAX_AGE_SECONDS (and the rebuild).
        for pid, (client, first) in crls.items():
            crl = crl_listing(client, [held.serial])
            latest = client.get("/crl.pem")
            assert same_connection(first, latest) and served_by(pair, latest, plain) == pid
            assert crl_reason(crl, held.serial) == x509.ReasonFlags.key_compromise
            assert crl_number(crl) > crl_number(x509.load_pem_x509_crl(first.content))
    finally:
        for client in clients:
            client.close()
        account.close()


def test_with_two_workers_disabling_in_one_and_enabling_in_the_other(pair: Deployment) -> None:
    account = new_account(pair.server, "Acme")
    held = enroll(pair, account, "two-workers-disabled")
    path = f"/device/{held.device_id}"
    listener, plain = pair.ports["listener"], pair.plain_port
    apis = one_per_worker(pair, lambda: d_client(pair.server, account.live_key), plain, "/division")
    devices = one_per_worker(
        pair, lambda: device_client(pair, "listener", held.cert, held.key), listener, path
    )
    clients = [c for group in (apis, devices) for c, _ in group.values()]
    try:
        first, second = sorted(apis)
        assert apis[first][0].put(f"{path}/disable").status_code == 200
        for device, _ in devices.values():
            assert_denied(device.get(path), "not active")
        assert apis[second][0].put(f"{path}/enable").status_code == 200
        for device, opened in devices.values():
            again = device.get(path)
            assert same_connection(opened, again)
            assert again.status_code == 200, again.text
    finally:
        for client in clients:
            client.close()
        account.close()


# --- delete is an archive; restore (API key, both stores) ------------------------------------


def make_archivable(account: Account, identifier: str) -> tuple[dict[str, Any], str]:
    """A device with a profile value, and its path."""
    profile = make_profile(account.live, unique_name("archive"), fields=[("serial", True)])
    device = make_device(account.live, identifier, profile, {"serial": "S-1"})
    return device, f"/device/{device['id']}"


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_delete_answers_the_archived_device_and_restore_brings_it_back(
    account: Account,
) -> None:
    device, path = make_archivable(account, "archived-1")
    deleted = account.live.delete(path)
    assert deleted.status_code == 200, deleted.text
    archived = check_device(deleted.json(), ("DELETED",))
    assert archived["status"] == "DELETED" and archived["id"] == device["id"]
    assert values_of(archived) == {"serial": "S-1"}
    assert parse_time(archived["updated"]) >= parse_time(device["updated"])
    # Gone from lists, the total (the counter) and every other call.
    assert list_devices(account.live) == {"limit": 20, "offset": 0, "total": 0, "records": []}
    assert list_devices(account.live, device_identifier="archived-1")["total"] == 0
    for answer in (
        account.live.get(path),
        account.live.put(path, json={"fields": [{"id": device["fields"][0]["id"], "value": "x"}]}),
        account.live.put(f"{path}/disable"),
        account.live.put(f"{path}/enable"),
        account.live.delete(path),
    ):
        assert_no_such_device(answer, device["id"])
    restored = account.live.put(f"{path}/restore")
    assert restored.status_code == 200, restored.text
    back = check_device(restored.json())
    assert back["status"] == "ACTIVE"
    assert {k: v for k, v in back.items() if k not in {"status", "updated"}} == {
        k: v for k, v in archived.items() if k not in {"status", "updated"}
    }
    assert get_device(account.live, device["id"]) == back
    assert [d["id"] for d in all_devices(account.live)] == [device["id"]]
    assert list_devices(account.live)["total"] == 1


def test_a_deleted_devices_identifier_is_free_and_restore_names_the_clash(
    account: Account,
) -> None:
    device, path = make_archivable(account, "reused-gw")
    assert account.live.delete(path).status_code == 200
    taker = account.live.post("/device", json={
        "device_identifier": "reused-gw", "device_profile_id": device["device_profile"]["id"],
        "fields": [{"id": device["fields"][0]["id"], "value": "S-2"}],
    })  # fmt: skip
    assert taker.status_code == 201, taker.text
    refused = account.live.put(f"{path}/restore")
    assert_errors(refused, 400, "invalid_input", mentions=["device_identifier", "reused-gw"])
    assert_no_such_device(account.live.get(path), device["id"])  # still archived
    assert [d["id"] for d in all_devices(account.live)] == [taker.json()["id"]]
    # Once the identifier is free again, the restore goes through.
    assert account.live.delete(f"/device/{taker.json()['id']}").status_code == 200
    assert account.live.put(f"{path}/restore").status_code == 200
    assert [d["id"] for d in all_devices(account.live)] == [device["id"]]


def test_restore_of_a_device_that_is_not_deleted_is_invalid_input(account: Account) -> None:
    device, path = make_archivable(account, "not-deleted")
    assert account.live.put(f"{path}/disable").status_code == 200
    message = assert_errors(account.live.put(f"{path}/restore"), 400, "invalid_input",
                            mentions=[device["id"], "not deleted"])  # fmt: skip
    assert "only a deleted device can be restored" in message
    assert get_device(account.live, device["id"])["status"] == "DISABLED"


def test_restore_is_refused_for_unknown_and_foreign_devices(
    account: Account, other: Account
) -> None:
    device, path = make_archivable(account, "foreign")
    assert account.live.delete(path).status_code == 200
    for client in (account.test, other.live):  # the other mode, another account
        assert_no_such_device(client.put(f"{path}/restore"), device["id"])
    unknown = str(uuid.uuid4())
    assert_no_such_device(account.live.put(f"/device/{unknown}/restore"), unknown)
    assert_no_such_device(account.live.put("/device/not-a-uuid/restore"), "not-a-uuid")
    assert_errors(account.anon.put(f"{path}/restore"), 401, "invalid_api_key")
    assert list_devices(account.live)["total"] == 0  # none of them restored it
