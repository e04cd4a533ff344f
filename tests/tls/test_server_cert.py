"""The server certificate: issued by devreg's CA for the right names, remade only when it
must be, its key private; real `openssl` accepts it as a TLS server certificate."""

from __future__ import annotations

import datetime as dt
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from devreg.pki.ca import CA_CERT_FILE, CA_KEY_FILE, load_or_create_ca
from devreg.tls.server_cert import ensure_server_certificate, split_names


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def names(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (
        set(san.get_values_for_type(x509.DNSName)),
        {str(ip) for ip in san.get_values_for_type(x509.IPAddress)},
    )


def test_made_for_the_default_and_configured_names_by_the_ca(tmp_path: Path) -> None:
    cert_path, key_path = ensure_server_certificate(
        tmp_path, ["devreg.example", "10.1.2.3", "2001:DB8::1"]
    )
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    cert = load(cert_path)
    assert names(cert) == (
        {"localhost", "devreg.example"},
        {"127.0.0.1", "::1", "10.1.2.3", "2001:db8::1"},
    )
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    cert.verify_directly_issued_by(load_or_create_ca(tmp_path).certificate)
    lifetime = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=360) < lifetime <= dt.timedelta(days=365)
    done = subprocess.run(
        [
            "openssl",
            "verify",
            "-purpose",
            "sslserver",
            "-CAfile",
            tmp_path / CA_CERT_FILE,
            cert_path,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_kept_while_good(tmp_path: Path) -> None:
    cert_path, key_path = ensure_server_certificate(tmp_path, ["a.example"])
    before = cert_path.read_bytes(), key_path.read_bytes()
    ensure_server_certificate(tmp_path, ["A.example"])  # names are case-insensitive
    ensure_server_certificate(tmp_path, ["a.example", "localhost"])  # a default again
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=300)
    ensure_server_certificate(tmp_path, ["a.example"], now=later)  # 65 days left
    assert (cert_path.read_bytes(), key_path.read_bytes()) == before


def test_remade_when_names_change(tmp_path: Path) -> None:
    cert_path, key_path = ensure_server_certificate(tmp_path, ["a.example"])
    first_key = key_path.read_bytes()
    ensure_server_certificate(tmp_path, ["b.example"])
    assert names(load(cert_path))[0] == {"localhost", "b.example"}
    assert key_path.read_bytes() != first_key  # a new key with each certificate
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    ensure_server_certificate(tmp_path, [])
    assert names(load(cert_path)) == ({"localhost"}, {"127.0.0.1", "::1"})


def test_remade_when_it_expires_within_30_days(tmp_path: Path) -> None:
    cert_path, _ = ensure_server_certificate(tmp_path)
    first = load(cert_path)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=340)  # 25 days left
    ensure_server_certificate(tmp_path, now=later)
    renewed = load(cert_path)
    assert renewed.serial_number != first.serial_number
    assert renewed.not_valid_after_utc > first.not_valid_after_utc


def test_remade_when_the_ca_changed_or_a_file_is_lost_or_broken(tmp_path: Path) -> None:
    cert_path, key_path = ensure_server_certificate(tmp_path)
    serial = load(cert_path).serial_number
    (tmp_path / CA_KEY_FILE).unlink()
    (tmp_path / CA_CERT_FILE).unlink()
    ensure_server_certificate(tmp_path)
    cert = load(cert_path)
    assert cert.serial_number != serial
    cert.verify_directly_issued_by(load_or_create_ca(tmp_path).certificate)
    for broken in (cert_path, key_path):
        serial = load(cert_path).serial_number
        broken.write_bytes(b"not PEM")
        ensure_server_certificate(tmp_path)
        assert load(cert_path).serial_number != serial
    serial = load(cert_path).serial_number
    key_path.unlink()
    ensure_server_certificate(tmp_path)
    assert load(cert_path).serial_number != serial


def test_a_key_of_another_type_or_a_certificate_without_names_is_replaced(
    tmp_path: Path,
) -> None:
    cert_path, key_path = ensure_server_certificate(tmp_path)
    serial = load(cert_path).serial_number
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_path.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ensure_server_certificate(tmp_path)
    assert load(cert_path).serial_number != serial
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    nameless = load_or_create_ca(tmp_path).issue(
        key.public_key(), x509.Name([]), lifetime=dt.timedelta(days=365), client=False
    )
    cert_path.write_bytes(nameless.public_bytes(serialization.Encoding.PEM))
    ensure_server_certificate(tmp_path)
    assert names(load(cert_path)) == ({"localhost"}, {"127.0.0.1", "::1"})


def test_a_key_that_does_not_match_is_replaced(tmp_path: Path) -> None:
    cert_path, key_path = ensure_server_certificate(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, other_key = ensure_server_certificate(other)
    serial = load(cert_path).serial_number
    key_path.write_bytes(other_key.read_bytes())
    ensure_server_certificate(tmp_path)
    assert load(cert_path).serial_number != serial


@pytest.mark.parametrize(
    ("given", "dns", "ips"),
    [
        ((), ("localhost",), ("127.0.0.1", "::1")),
        (("X.example", "x.example", "::0001"), ("localhost", "x.example"), ("127.0.0.1", "::1")),
    ],
)
def test_split_names(given: tuple[str, ...], dns: tuple[str, ...], ips: tuple[str, ...]) -> None:
    assert split_names(given) == (dns, ips)
