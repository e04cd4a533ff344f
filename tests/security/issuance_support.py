"""What the issuance-abuse tests drive a real `devreg serve` with: keys (including RSA with
exponents devreg must refuse), PKCS#10 requests, and TLS clients for the EST port and the
client-auth listener, as a device (or its thief) would hold them."""

from __future__ import annotations

import base64
import math
import secrets
import ssl
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from devreg.pki.revocation import MARK_MAX_AGE_SECONDS, REBUILD_WAIT_SECONDS
from tests.support.server import RunningServer, create_account

API = "/iot/api/v2"
EST = "/.well-known/est/"
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def rsa_with_exponent(e: int | None, bits: int = 3072) -> rsa.RSAPrivateKey:
    """A valid RSA key with public exponent `e` (None: a random one of ~`bits` bits, which
    OpenSSL accepts for moduli up to 3072 bits and which costs ~100 times more to verify)."""
    base = rsa.generate_private_key(65537, bits).private_numbers()
    p, q = base.p, base.q
    phi = (p - 1) * (q - 1)
    while e is None or math.gcd(e, phi) != 1:
        e = secrets.randbits(bits - 2) | 1 | (1 << (bits - 3))
    d = pow(e, -1, phi)
    public = rsa.RSAPublicNumbers(e, p * q)
    iqmp = rsa.rsa_crt_iqmp(p, q)
    return rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), iqmp, public).private_key()


@cache
def huge_exponent_key() -> rsa.RSAPrivateKey:
    return rsa_with_exponent(None)


@cache
def exponent_3_key() -> rsa.RSAPrivateKey:
    return rsa_with_exponent(3, 2048)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def csr(key: PrivateKey, like: Held | None = None) -> x509.CertificateSigningRequest:
    """A request for `key`; `like`: with that certificate's subject and subjectAltName, as
    a renewal (simplereenroll, D renew) must be."""
    builder = x509.CertificateSigningRequestBuilder()
    if like is None:
        return builder.subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")])
        ).sign(key, hashes.SHA256())
    held = x509.load_pem_x509_certificate(like.cert.read_bytes())
    san = held.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    builder = builder.subject_name(held.subject).add_extension(san, critical=False)
    return builder.sign(key, hashes.SHA256())


def csr_pem(key: PrivateKey) -> str:
    return csr(key).public_bytes(serialization.Encoding.PEM).decode()


def est_body(request: x509.CertificateSigningRequest) -> dict[str, Any]:
    """httpx arguments for a simpleenroll/simplereenroll body (RFC 7030: base64 DER)."""
    der = request.public_bytes(serialization.Encoding.DER)
    return {"content": base64.b64encode(der), "headers": {"content-type": "application/pkcs10"}}


def pem_of(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass
class Held:
    """A certificate and its key as files, as a device (or a thief) holds them."""

    certificate_id: str | None
    cert: Path
    key: Path
    serial: int


@dataclass
class World:
    server: RunningServer
    work: Path
    account: dict[str, str] = field(default_factory=dict)
    count: int = 0

    def __post_init__(self) -> None:
        self.account = create_account(self.server, f"Acme-{secrets.token_hex(3)}")
        self.api = httpx.Client(
            base_url=self.server.base_url + API,
            headers={"x-api-key": self.account["live_key"]},
            timeout=30,
        )

    @property
    def ca(self) -> str:
        return str(self.server.data_dir / "ca.pem")

    def device(self) -> str:
        self.count += 1
        made = self.api.post("/device", json={"device_identifier": f"dev-{self.count}"})
        assert made.status_code == 201, made.text
        device_id: str = made.json()["id"]
        return device_id

    def hold(self, pem: str | bytes, key: bytes, certificate_id: str | None = None) -> Held:
        self.count += 1
        cert_path = self.work / f"{self.count}.pem"
        key_path = self.work / f"{self.count}.key"
        cert_path.write_bytes(pem.encode() if isinstance(pem, str) else pem)
        key_path.write_bytes(key)
        key_path.chmod(0o600)
        serial = x509.load_pem_x509_certificate(cert_path.read_bytes()).serial_number
        return Held(certificate_id, cert_path, key_path, serial)

    def issue(self, device_id: str) -> Held:
        """A certificate with a key devreg made, through the API (the owner's)."""
        made = self.api.post(f"/device/{device_id}/certificate", json={"generate_key": True})
        assert made.status_code == 201, made.text
        body = made.json()
        return self.hold(body["pem"], body["private_key"].encode(), body["certificate_id"])

    def tls(self, port: int | None, held: Held | None = None) -> httpx.Client:
        context = ssl.create_default_context(cafile=self.ca)
        if held is not None:
            context.load_cert_chain(held.cert, held.key)
        return httpx.Client(base_url=f"https://localhost:{port}", verify=context, timeout=30)

    def est(self, held: Held | None = None) -> httpx.Client:
        return self.tls(self.server.est_port, held)

    def mtls(self, held: Held) -> httpx.Client:
        return self.tls(self.server.mtls_port, held)

    def enrolled(self, answer: httpx.Response, key: PrivateKey) -> Held:
        """The certificate of an EST answer (base64 PKCS#7 certs-only), held with `key`."""
        assert answer.status_code == 200, answer.text
        (cert,) = pkcs7.load_der_pkcs7_certificates(base64.b64decode(answer.content))
        return self.hold(cert.public_bytes(serialization.Encoding.PEM), pem_of(key))

    def device_answers(self, device_id: str, held: Held) -> int:
        """The status the client-auth listener gives this certificate's GET of the device."""
        with self.mtls(held) as device:
            return device.get(f"{API}/device/{device_id}").status_code

    def certificates(self, device_id: str) -> dict[int, dict[str, Any]]:
        listed = self.api.get(f"/device/{device_id}/certificate")
        assert listed.status_code == 200, listed.text
        return {int(c["serial_number"], 16): c for c in listed.json()["records"]}

    def crl_serials(self, including: set[int] | frozenset[int] = frozenset()) -> set[int]:
        """The CRL's serials, once it lists `including`: a revocation reaches the CRL within
        MARK_MAX_AGE_SECONDS and a rebuild, not at once (refusal over mTLS is at once)."""
        deadline = time.monotonic() + MARK_MAX_AGE_SECONDS + REBUILD_WAIT_SECONDS + 10
        while True:
            response = httpx.get(self.server.base_url + "/crl.der")
            if response.status_code == 429:  # CRL fetches are limited per address
                time.sleep(float(response.headers.get("retry-after", "1")))
                continue
            crl = x509.load_der_x509_crl(response.content)
            serials = {entry.serial_number for entry in crl}
            if including <= serials or time.monotonic() > deadline:
                return serials
            time.sleep(0.2)
