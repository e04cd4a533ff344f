"""pki/crl_der.py against cryptography: for the same CRL, the same to-be-signed bytes, a
signature the CA's key verifies, and the PEM cryptography would write."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devreg.pki import crl_der
from devreg.pki.ca import create_ca

CA = create_ca()
NOW = dt.datetime(2026, 12, 2, 6, 30, 15, 987654, tzinfo=dt.UTC)
AKI = x509.AuthorityKeyIdentifier.from_issuer_public_key(CA.key.public_key())
REASONS = [None, *(flag for flag in x509.ReasonFlags if flag != x509.ReasonFlags.remove_from_crl)]
Row = tuple[int, int, x509.ReasonFlags | None]


def theirs(
    rows: list[Row], number: int, key: ec.EllipticCurvePrivateKey = CA.key
) -> x509.CertificateRevocationList:
    revoked = []
    for serial, at, reason in rows:
        extensions = (
            [x509.Extension(x509.CRLReason.oid, False, x509.CRLReason(reason))]
            if reason not in (None, x509.ReasonFlags.unspecified)
            else []
        )
        moment = dt.datetime.fromtimestamp(at, dt.UTC)
        revoked.append(x509.RevokedCertificateBuilder(serial, moment, extensions).build())
    return x509.CertificateRevocationListBuilder(
        CA.certificate.subject,
        NOW,
        NOW + dt.timedelta(days=1),
        [
            x509.Extension(x509.CRLNumber.oid, False, x509.CRLNumber(number)),
            x509.Extension(AKI.oid, False, AKI),
        ],
        revoked,
    ).sign(key, hashes.SHA256())


def ours(rows: list[Row], number: int) -> bytes:
    entries = (crl_der.entry(*row) for row in rows)
    return crl_der.tbs_cert_list(
        CA.certificate.subject, NOW, NOW + dt.timedelta(days=1), number, AKI, entries
    )


def edge_rows() -> list[Row]:
    """Serials of every length up to 20 octets and at the sign-bit edges, every reason,
    times before and after 2050 (UTCTime, GeneralizedTime) and at the epoch."""
    serials = [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 2**159 - 1]
    serials += [secrets.randbits(bits) | 1 << (bits - 1) for bits in range(1, 160, 7)]
    times = [0, int(NOW.timestamp()), 2524607999, 2524608000, 4102444800]  # 2049-12-31..2100
    return [
        (serial, times[index % len(times)], REASONS[index % len(REASONS)])
        for index, serial in enumerate(serials)
    ]


@pytest.mark.parametrize(
    ("rows", "number"),
    [
        (edge_rows(), 1_765_000_000_000_000),
        ([], 1),
        ([(5, int(NOW.timestamp()), None)], 2**70),
        (
            [
                (secrets.randbits(127), int(NOW.timestamp()) - i, REASONS[i % 10])
                for i in range(3000)
            ],
            7,
        ),
    ],
    ids=["edges", "empty", "one", "3000 entries (long lengths)"],
)
def test_the_bytes_are_cryptographys(rows: list[Row], number: int) -> None:
    tbs = ours(rows, number)
    assert tbs == theirs(rows, number).tbs_certlist_bytes
    der = crl_der.signed(tbs, CA.key)
    parsed = x509.load_der_x509_crl(der)
    assert parsed.tbs_certlist_bytes == tbs
    assert parsed.is_signature_valid(CA.key.public_key())
    assert parsed.signature_hash_algorithm is not None
    assert parsed.signature_hash_algorithm.name == "sha256"
    assert parsed.public_bytes(serialization.Encoding.DER) == der
    assert crl_der.pem(der) == parsed.public_bytes(serialization.Encoding.PEM)
    assert [entry.serial_number for entry in parsed] == [serial for serial, _, _ in rows]


def test_another_key_does_not_verify_it() -> None:
    der = crl_der.signed(ours(edge_rows(), 3), CA.key)
    assert not x509.load_der_x509_crl(der).is_signature_valid(create_ca().key.public_key())
