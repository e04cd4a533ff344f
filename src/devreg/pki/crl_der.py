"""The CRL's DER (RFC 5280 section 5), encoded here in plain Python.

cryptography's CertificateRevocationListBuilder takes every entry at once
(`revoked_certificates=[...]`), but its encoding and signing run in Rust holding the GIL:
at 50,000 entries, sign() 60-130 ms and public_bytes() 85 ms at a stretch, which would
stall the event loop even from a thread. Python code gives the GIL up every few
milliseconds, and the signature is over a SHA-256 digest hashlib computes without it.

Only what devreg's CRL holds: version 2, ECDSA with SHA-256, the CRL number and authority
key identifier extensions, entries with an optional reason code. tests/pki/test_crl_der.py
checks the bytes against cryptography's for the same CRL.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import time
from collections.abc import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

_SEQUENCE, _INTEGER, _BIT_STRING, _OCTET_STRING = 0x30, 0x02, 0x03, 0x04
_UTC_TIME, _GENERALIZED_TIME, _EXPLICIT_0 = 0x17, 0x18, 0xA0
_OID_CRL_NUMBER = bytes.fromhex("0603551d14")  # 2.5.29.20
_OID_REASON = bytes.fromhex("0603551d15")  # 2.5.29.21
_OID_AUTHORITY_KEY_ID = bytes.fromhex("0603551d23")  # 2.5.29.35
# AlgorithmIdentifier ecdsa-with-SHA256 (1.2.840.10045.4.3.2), without parameters.
ECDSA_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
_VERSION_2 = bytes.fromhex("020101")
_UTC_TIME_UNTIL = 2050  # RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime after


def _tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + content


def integer(value: int) -> bytes:
    """A non-negative INTEGER (serials, the CRL number)."""
    return _tlv(_INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def time_value(seconds: int) -> bytes:
    moment = time.gmtime(seconds)
    text = "%02d%02d%02d%02d%02dZ" % moment[1:6]  # noqa: UP031 (the fastest here)
    if moment.tm_year < _UTC_TIME_UNTIL:
        return _tlv(_UTC_TIME, b"%02d" % (moment.tm_year % 100) + text.encode())
    return _tlv(_GENERALIZED_TIME, b"%04d" % moment.tm_year + text.encode())


def _extension(oid: bytes, value: bytes) -> bytes:
    return _tlv(_SEQUENCE, oid + _tlv(_OCTET_STRING, value))  # non-critical: no flag


# An entry's crlEntryExtensions for each reason; unspecified is left out (RFC 5280 5.3.1).
ENTRY_REASONS: dict[x509.ReasonFlags, bytes] = {
    flag: _tlv(_SEQUENCE, _extension(_OID_REASON, x509.CRLReason(flag).public_bytes()))
    for flag in x509.ReasonFlags
    if flag not in (x509.ReasonFlags.unspecified, x509.ReasonFlags.remove_from_crl)
}


def entry(serial: int, revoked_at: int, reason: x509.ReasonFlags | None) -> bytes:
    """One revokedCertificates element; `revoked_at` in seconds."""
    extensions = ENTRY_REASONS.get(reason, b"") if reason is not None else b""
    return _tlv(_SEQUENCE, integer(serial) + time_value(revoked_at) + extensions)


def tbs_cert_list(
    issuer: x509.Name,
    this_update: dt.datetime,
    next_update: dt.datetime,
    number: int,
    authority_key_id: x509.AuthorityKeyIdentifier,
    entries: Iterable[bytes],
) -> bytes:
    revoked = b"".join(entries)
    extensions = _extension(_OID_CRL_NUMBER, integer(number)) + _extension(
        _OID_AUTHORITY_KEY_ID, authority_key_id.public_bytes()
    )
    return _tlv(
        _SEQUENCE,
        _VERSION_2
        + ECDSA_SHA256
        + issuer.public_bytes()
        + time_value(int(this_update.timestamp()))
        + time_value(int(next_update.timestamp()))
        + (_tlv(_SEQUENCE, revoked) if revoked else b"")  # absent when empty (5.1.2.6)
        + _tlv(_EXPLICIT_0, _tlv(_SEQUENCE, extensions)),
    )


def signed(tbs: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """The CertificateList: `tbs`, the algorithm, the CA's signature over it."""
    digest = hashlib.sha256(tbs).digest()
    signature = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    return _tlv(_SEQUENCE, tbs + ECDSA_SHA256 + _tlv(_BIT_STRING, b"\x00" + signature))


def pem(der: bytes) -> bytes:
    text = base64.b64encode(der)
    lines = [text[at : at + 64] for at in range(0, len(text), 64)]
    return b"-----BEGIN X509 CRL-----\n" + b"\n".join(lines) + b"\n-----END X509 CRL-----\n"
