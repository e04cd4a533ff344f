"""The CA core against the real `openssl` binary: what it issues, real clients accept."""

from __future__ import annotations

import datetime as dt
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devreg.core.errors import InvalidInput
from devreg.pki.ca import CA_CERT_FILE, CA_KEY_FILE, load_or_create_ca
from devreg.pki.keys import check_public_key, public_key_hash


def _subject(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def test_ca_is_made_once_with_a_private_key_file_of_mode_0600(tmp_path: Path) -> None:
    first = load_or_create_ca(tmp_path)
    second = load_or_create_ca(tmp_path)
    assert stat.S_IMODE((tmp_path / CA_KEY_FILE).stat().st_mode) == 0o600
    assert first.certificate == second.certificate
    assert public_key_hash(first.key.public_key()) == public_key_hash(second.key.public_key())
    constraints = first.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca is True


def test_a_lost_ca_certificate_is_remade_from_the_kept_key(tmp_path: Path) -> None:
    first = load_or_create_ca(tmp_path)
    (tmp_path / CA_CERT_FILE).unlink()
    again = load_or_create_ca(tmp_path)
    assert again.certificate.subject == first.certificate.subject
    assert public_key_hash(again.key.public_key()) == public_key_hash(first.key.public_key())


def test_client_certificate_chains_to_the_ca_for_openssl(tmp_path: Path) -> None:
    ca = load_or_create_ca(tmp_path)
    device_key = ec.generate_private_key(ec.SECP256R1())
    cert = ca.issue(
        device_key.public_key(),
        _subject("device-1"),
        lifetime=dt.timedelta(days=90),
        client=True,
        uris=("urn:uuid:6f1c2d9e-0000-4000-8000-000000000001",),
        crl_url="http://127.0.0.1:8080/crl.der",
    )
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=90) <= lifetime <= dt.timedelta(days=90, minutes=6)
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    done = subprocess.run(
        [
            "openssl",
            "verify",
            "-purpose",
            "sslclient",
            "-CAfile",
            str(tmp_path / CA_CERT_FILE),
            str(leaf),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    wrong_purpose = subprocess.run(
        [
            "openssl",
            "verify",
            "-purpose",
            "sslserver",
            "-CAfile",
            str(tmp_path / CA_CERT_FILE),
            str(leaf),
        ],
        capture_output=True,
        text=True,
    )
    assert wrong_purpose.returncode != 0


def test_certificate_from_another_ca_does_not_verify(tmp_path: Path) -> None:
    ours = load_or_create_ca(tmp_path / "ours")
    other = load_or_create_ca(tmp_path / "other")
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(
        other.issue(
            key.public_key(), _subject("x"), lifetime=dt.timedelta(days=1), client=True
        ).public_bytes(serialization.Encoding.PEM)
    )
    done = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "ours" / CA_CERT_FILE), str(leaf)],
        capture_output=True,
    )
    assert ours.certificate != other.certificate
    assert done.returncode != 0


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP256R1()).public_key(),
        ec.generate_private_key(ec.SECP384R1()).public_key(),
        rsa.generate_private_key(65537, 2048).public_key(),
        ed25519.Ed25519PrivateKey.generate().public_key(),
    ],
    ids=["p256", "p384", "rsa2048", "ed25519"],
)
def test_accepted_keys(key: object) -> None:
    assert check_public_key(key) is key


def _rsa_public(e: int) -> rsa.RSAPublicKey:
    """An RSA-2048 public key with exponent `e` (only the public part is checked)."""
    n = rsa.generate_private_key(65537, 2048).public_key().public_numbers().n
    return rsa.RSAPublicNumbers(e, n).public_key()


@pytest.mark.parametrize(
    ("key", "words"),
    [
        (rsa.generate_private_key(65537, 1024).public_key(), "1024 bits is too weak"),  # noqa: S505
        (ec.generate_private_key(ec.SECP192R1()).public_key(), "secp192r1 is not accepted"),
        (ec.generate_private_key(ec.SECP256K1()).public_key(), "secp256k1 is not accepted"),
        (ed448.Ed448PrivateKey.generate().public_key(), "is not accepted"),
        (_rsa_public(3), "exponent is not accepted: only 65537"),
        (_rsa_public(2**2040 + 1), "exponent is not accepted: only 65537"),
        (_rsa_public(65539), "exponent is not accepted: only 65537"),
        (rsa.RSAPublicNumbers(65537, (2**8192) - 1).public_key(), "8192 bits is too large"),
    ],
    ids=["rsa1024", "p192", "secp256k1", "ed448", "e=3", "huge e", "e=65539", "rsa8192"],
)
def test_weak_or_unknown_keys_are_refused_with_the_reason(key: object, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        check_public_key(key)


def _der(tag: int, body: bytes) -> bytes:
    """One DER TLV (definite length)."""
    if len(body) < 0x80:
        return bytes([tag, len(body)]) + body
    size = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def test_a_request_with_a_key_type_cryptography_does_not_know_is_400() -> None:
    """Found by review: a CSR whose public key is of an unknown algorithm (OID 1.2.3.4)
    raised UnsupportedAlgorithm, not ValueError, and answered 500."""
    from devreg.pki.issuing import csr_key

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]).public_bytes()
    unknown = _der(0x06, bytes([42, 3, 4]))  # 1.2.3.4
    ecdsa_sha256 = _der(0x06, bytes.fromhex("2a8648ce3d040302"))
    spki = _der(0x30, _der(0x30, unknown) + _der(0x03, b"\x00" + b"\x01" * 32))
    info = _der(0x30, b"\x02\x01\x00" + name + spki + b"\xa0\x00")
    signature = _der(0x03, b"\x00\x30\x06\x02\x01\x01\x02\x01\x01")
    request = x509.load_der_x509_csr(_der(0x30, info + _der(0x30, ecdsa_sha256) + signature))
    with pytest.raises(InvalidInput, match="cannot be read"):
        csr_key(request)
