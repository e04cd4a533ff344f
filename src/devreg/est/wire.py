"""EST's wire formats (RFC 7030 section 4): base64 DER PKCS#10 in, base64 DER PKCS#7
certs-only out, plain-text errors."""

from __future__ import annotations

import base64
import binascii

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from devreg.core.errors import InvalidInput

PKCS7_CERTS_ONLY = b"application/pkcs7-mime; smime-type=certs-only"
PKCS7 = b"application/pkcs7-mime"
PKCS10 = "application/pkcs10"


def decode_csr(body: bytes) -> x509.CertificateSigningRequest:
    """The base64 (whitespace allowed) DER PKCS#10 request of a simpleenroll body."""
    try:
        der = base64.b64decode(b"".join(body.split()), validate=True)
        return x509.load_der_x509_csr(der)
    except (binascii.Error, ValueError):
        raise InvalidInput("the body is not a base64-encoded DER PKCS#10 request", "csr") from None


def certs_only(certificates: list[x509.Certificate]) -> bytes:
    """A base64 DER PKCS#7 certs-only structure, in 64-character lines."""
    der = pkcs7.serialize_certificates(certificates, serialization.Encoding.DER)
    return base64.encodebytes(der)
