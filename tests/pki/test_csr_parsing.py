"""parse_csr reads the whole request up front: a correctly signed CSR that cryptography
can only half read is a 400, never a 500 later in the handler."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devreg.core.errors import InvalidInput
from devreg.pki.issuing import parse_csr

SEQ, SET, UTF8 = 0x30, 0x31, 0x0C


def tlv(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 128:
        length = bytes([size])
    else:
        raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + body


def oid(text: str) -> bytes:
    parts = [int(x) for x in text.split(".")]
    out = bytes([parts[0] * 40 + parts[1]])
    for part in parts[2:]:
        encoded = [part & 0x7F]
        part >>= 7
        while part:
            encoded.insert(0, 0x80 | (part & 0x7F))
            part >>= 7
        out += bytes(encoded)
    return tlv(0x06, out)


def signed_csr(subject_value: bytes) -> str:
    """A CSR with subject CN=<subject_value as a UTF8String>, correctly signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    subject = tlv(SEQ, tlv(SET, tlv(SEQ, oid("2.5.4.3") + tlv(UTF8, subject_value))))
    info = tlv(SEQ, tlv(0x02, b"\x00") + subject + spki + tlv(0xA0, b""))
    signature = key.sign(info, ec.ECDSA(hashes.SHA256()))
    der = tlv(SEQ, info + tlv(SEQ, oid("1.2.840.10045.4.3.2")) + tlv(0x03, b"\x00" + signature))
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"


def test_a_well_formed_hand_made_csr_parses() -> None:
    csr = parse_csr(signed_csr(b"device-1"))
    assert csr.subject.rfc4514_string() == "CN=device-1"


def test_a_subject_that_is_not_utf8_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="subject or extensions cannot be read"):
        parse_csr(signed_csr(b"\xff\xfe"))
