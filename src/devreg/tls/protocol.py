"""uvicorn's httptools protocol (with devreg's limits), filling the ASGI TLS extension on
the TLS listeners.

uvicorn builds each request's scope in `on_message_begin` and never looks at the peer's
certificate; this subclass reads it once per connection (the handshake, which verified it,
is complete when `connection_made` is called) and adds it to every request's scope.
"""

from __future__ import annotations

import ssl
from typing import Any

from cryptography import x509

from devreg.tls.client_cert import TLS_VERSIONS, tls_extension
from devreg.web.protocol import LimitedHttpToolsProtocol


class MtlsHttpToolsProtocol(LimitedHttpToolsProtocol):
    tls: dict[str, Any] | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.tls = _connection_tls(transport.get_extra_info("ssl_object"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.tls is not None and not self.refused:
            tls = dict(self.tls)  # each request its own dict: a handler may change it
            tls["client_cert_chain"] = list(self.tls["client_cert_chain"])
            self.scope["extensions"] = {"tls": tls}  # type: ignore[dict-item]


def _connection_tls(ssl_object: ssl.SSLObject | None) -> dict[str, Any] | None:
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:  # cannot happen with CERT_REQUIRED; no certificate is no extension
        return None
    subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    version = TLS_VERSIONS.get(ssl_object.version() or "")
    return tls_extension(ssl.DER_cert_to_PEM_cert(der), subject, version)
