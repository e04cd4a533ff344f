"""devreg's certificate authority: an EC P-256 root made at init, kept in the data dir.

`ca.pem` is what clients trust; `ca.key` never leaves the data dir and is mode 0600.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devreg.pki.keys import PublicKey, public_key_hash

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
CA_LIFETIME = dt.timedelta(days=3650)
BACKDATE = dt.timedelta(minutes=5)  # tolerate clients whose clocks run a little behind


def write_secret(path: Path, data: bytes) -> None:
    """Create `path` mode 0600 (never world-readable, not even for a moment), fsync'd."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_public(path: Path, data: bytes) -> None:
    """Write a certificate mode 0644 whatever the umask: anyone may read it, only we change
    it (a umask of 000 would otherwise make it writable by every user)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.fchmod(fd, 0o644)  # also when the file was there before
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def random_serial() -> int:
    """A positive serial of up to 127 random bits (RFC 5280: at most 20 octets)."""
    return secrets.randbits(127) | 1


@dataclass(frozen=True)
class CertificateAuthority:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        public_key: PublicKey,
        subject: x509.Name,
        *,
        lifetime: dt.timedelta,
        client: bool,
        dns_names: tuple[str, ...] = (),
        ip_addresses: tuple[str, ...] = (),
        uris: tuple[str, ...] = (),
        crl_url: str | None = None,
        now: dt.datetime | None = None,
    ) -> x509.Certificate:
        """An end-entity certificate for `public_key`: client or server authentication."""
        now = now or dt.datetime.now(dt.UTC)
        ca_public = self.key.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(random_serial())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(min(now + lifetime, self.certificate.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_encipherment=False,
                    content_commitment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public), critical=False
            )
        )
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        names += [x509.UniformResourceIdentifier(uri) for uri in uris]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        if crl_url:
            point = x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(crl_url)],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
            builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
        return builder.sign(self.key, hashes.SHA256())


def _ca_name(key: ec.EllipticCurvePrivateKey) -> x509.Name:
    # Named after its key, so that a certificate remade from the same key has the same name.
    tag = public_key_hash(key.public_key()).hex()[:8]
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "devreg"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"devreg CA {tag}"),
        ]
    )


def self_sign(key: ec.EllipticCurvePrivateKey, now: dt.datetime | None = None) -> x509.Certificate:
    now = now or dt.datetime.now(dt.UTC)
    subject = _ca_name(key)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(random_serial())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def create_ca(now: dt.datetime | None = None) -> CertificateAuthority:
    key = ec.generate_private_key(ec.SECP256R1())
    return CertificateAuthority(self_sign(key, now), key)


def _read_key(path: Path) -> ec.EllipticCurvePrivateKey:
    # Another process may be between creating the file and writing it: wait a little.
    deadline = time.monotonic() + 5
    while True:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            break
        except ValueError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} does not hold an EC private key")
    return key


def load_or_create_ca(data_dir: Path) -> CertificateAuthority:
    """The data dir's CA, made on first use: the key first (0600), then its certificate."""
    cert_path, key_path = data_dir / CA_CERT_FILE, data_dir / CA_KEY_FILE
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not key_path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with contextlib.suppress(FileExistsError):  # another process made it first
            write_secret(key_path, pem)
    key = _read_key(key_path)
    if not cert_path.exists():
        tmp = data_dir / f".{CA_CERT_FILE}.{os.getpid()}.tmp"
        write_public(tmp, self_sign(key).public_bytes(serialization.Encoding.PEM))
        os.replace(tmp, cert_path)
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    if public_key_hash(certificate.public_key()) != public_key_hash(key.public_key()):  # type: ignore[arg-type]
        raise ValueError(f"{cert_path} does not belong to the key in {key_path}")
    return CertificateAuthority(certificate, key)
