"""The client certificate of a request, in the ASGI TLS extension's shape.

Both the client-certificate listener (`tls.protocol`) and a trusted proxy's forwarded
header (`tls.forwarded`) fill `scope["extensions"]["tls"]`; handlers read the certificate
with `peer_certificate(scope)` only, whichever way it came.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from cryptography import x509

TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def tls_extension(leaf_pem: str, subject: str, tls_version: int | None) -> dict[str, Any]:
    """`scope["extensions"]["tls"]` for a request made with the client certificate
    `leaf_pem` (whose subject, RFC 4514, is `subject`)."""
    return {
        "server_cert": None,
        "client_cert_chain": [leaf_pem],
        "client_cert_name": subject,
        "client_cert_error": None,
        "tls_version": tls_version,
        "cipher_suite": None,
    }


def peer_certificate(scope: Mapping[str, Any]) -> x509.Certificate | None:
    """The client certificate the request was made with (verified against a trusted CA by
    the listener or by the proxy wrapper), or None when there is none."""
    tls = (scope.get("extensions") or {}).get("tls")
    if not tls:
        return None
    chain = tls.get("client_cert_chain")
    if not chain:
        return None
    return _parse(chain[0])


@functools.lru_cache(maxsize=1024)
def _parse(pem: str) -> x509.Certificate:
    # A device usually keeps its connection or comes back with the same certificate.
    return x509.load_pem_x509_certificate(pem.encode("ascii"))
