"""The listeners' server certificate, issued by devreg's own CA and kept in the data dir.

`server.pem` / `server.key` (0600) name `localhost`, `127.0.0.1`, `::1` and the configured
names. They are remade when missing, when they expire within 30 days, when the names
changed or when they no longer belong to the CA.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devreg.pki.ca import CertificateAuthority, load_or_create_ca, write_public, write_secret
from devreg.pki.keys import public_key_hash

SERVER_CERT_FILE = "server.pem"
SERVER_KEY_FILE = "server.key"
DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
LIFETIME = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)


def split_names(names: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """DNS names and IP addresses (normalised), defaults first, each once."""
    dns: list[str] = []
    ips: list[str] = []
    for name in (*DEFAULT_NAMES, *names):
        try:
            text = str(ipaddress.ip_address(name))
            target = ips
        except ValueError:
            text = name.lower()
            target = dns
        if text not in target:
            target.append(text)
    return tuple(dns), tuple(ips)


def ensure_server_certificate(
    data_dir: Path, names: Sequence[str] = (), now: dt.datetime | None = None
) -> tuple[Path, Path]:
    """The paths of `server.pem` and `server.key`, made or remade when needed."""
    ca = load_or_create_ca(data_dir)
    cert_path, key_path = data_dir / SERVER_CERT_FILE, data_dir / SERVER_KEY_FILE
    dns, ips = split_names(names)
    now = now or dt.datetime.now(dt.UTC)
    with _lock(data_dir):
        if not _still_good(ca, cert_path, key_path, dns, ips, now):
            _issue(ca, cert_path, key_path, dns, ips, now)
    return cert_path, key_path


@contextmanager
def _lock(data_dir: Path) -> Iterator[None]:
    """`init` and `serve` (or two servers) on one data dir take turns."""
    fd = os.open(data_dir / ".server-cert.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _still_good(
    ca: CertificateAuthority,
    cert_path: Path,
    key_path: Path,
    dns: tuple[str, ...],
    ips: tuple[str, ...],
    now: dt.datetime,
) -> bool:
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return False
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return False
    try:
        certificate.verify_directly_issued_by(ca.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return (
        public_key_hash(certificate.public_key()) == public_key_hash(key.public_key())  # type: ignore[arg-type]
        and certificate.not_valid_after_utc - now > RENEW_BEFORE
        and set(names.get_values_for_type(x509.DNSName)) == set(dns)
        and {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == set(ips)
    )


def _issue(
    ca: CertificateAuthority,
    cert_path: Path,
    key_path: Path,
    dns: tuple[str, ...],
    ips: tuple[str, ...],
    now: dt.datetime,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "devreg"),
            x509.NameAttribute(NameOID.COMMON_NAME, dns[0]),
        ]
    )
    certificate = ca.issue(
        key.public_key(),
        subject,
        lifetime=LIFETIME,
        client=False,
        dns_names=dns,
        ip_addresses=ips,
        now=now,
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Each file is replaced whole (a reader never sees half of one); the key first.
    suffix = f".{os.getpid()}.tmp"
    key_tmp = key_path.with_name(f".{key_path.name}{suffix}")
    cert_tmp = cert_path.with_name(f".{cert_path.name}{suffix}")
    for leftover in (key_tmp, cert_tmp):
        with suppress(FileNotFoundError):
            leftover.unlink()
    write_secret(key_tmp, key_pem)
    os.replace(key_tmp, key_path)
    write_public(cert_tmp, certificate.public_bytes(serialization.Encoding.PEM))
    os.replace(cert_tmp, cert_path)
