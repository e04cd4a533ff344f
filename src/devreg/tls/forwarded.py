"""Client certificates forwarded by a trusted TLS-terminating proxy (proxy mode).

nginx: `proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;` (URL-escaped PEM).
Envoy: `X-Forwarded-Client-Cert`, the `Cert="<URL-escaped PEM>"` of its first element.

`ForwardedClientCert` wraps the plain listener's app when trusted proxies are configured.
From a trusted peer (the TCP peer, before any X-Forwarded-For rewriting) a well-formed
certificate that devreg also verifies fills `scope["extensions"]["tls"]`, as the mTLS
listener does; anything else means no certificate. The headers are always removed from the
scope, so nothing downstream can read an unchecked copy.
"""

from __future__ import annotations

import ipaddress
import logging
import urllib.parse
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from devreg.pki.verify import verify_client_certificate
from devreg.tls.client_cert import tls_extension
from devreg.web.request import Receive, Scope, Send

NGINX_HEADER = b"x-ssl-client-cert"
ENVOY_HEADER = b"x-forwarded-client-cert"
CERT_HEADERS = frozenset({NGINX_HEADER, ENVOY_HEADER})
PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
PEM_END = "-----END CERTIFICATE-----"

log = logging.getLogger("devreg.tls")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(proxies: Sequence[str]) -> list[Network]:
    return [ipaddress.ip_network(proxy, strict=False) for proxy in proxies]


class ForwardedClientCert:
    def __init__(
        self, app: Any, trusted_proxies: Sequence[str], trusted_cas: Sequence[x509.Certificate]
    ) -> None:
        self.app = app
        self.networks = parse_networks(trusted_proxies)
        self.trusted_cas = list(trusted_cas)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            self.apply(scope)
        await self.app(scope, receive, send)

    def apply(self, scope: Scope) -> None:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if not any(name in CERT_HEADERS for name, _ in headers):
            return
        forwarded = [(name, value) for name, value in headers if name in CERT_HEADERS]
        scope["headers"] = [(name, value) for name, value in headers if name not in CERT_HEADERS]
        client = scope.get("client")
        if not client or not self.is_trusted(client[0]):
            return  # anyone may send these headers: only a trusted proxy is heard
        found = forwarded_certificate(forwarded)
        if found is None:
            log.warning("malformed client certificate header from proxy %s ignored", client[0])
            return
        pem, certificate = found
        if not verify_client_certificate(certificate, self.trusted_cas):
            log.warning("untrusted client certificate from proxy %s ignored", client[0])
            return
        extensions = dict(scope.get("extensions") or {})
        extensions["tls"] = tls_extension(pem, certificate.subject.rfc4514_string(), None)
        scope["extensions"] = extensions

    def is_trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


def forwarded_certificate(
    forwarded: list[tuple[bytes, bytes]],
) -> tuple[str, x509.Certificate] | None:
    """The PEM and the certificate in exactly one forwarded header; None when malformed."""
    if len(forwarded) != 1:
        return None  # several copies: which one would the proxy have meant?
    try:
        pem = _first_pem(urllib.parse.unquote(_value_of(forwarded[0]), errors="strict"))
        certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except ValueError:  # UnicodeError is one too
        return None
    # Handlers see the PEM in one form, however the proxy wrapped its lines.
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"), certificate


def _value_of(header: tuple[bytes, bytes]) -> str:
    """The URL-escaped PEM in a header (ValueError when there is none)."""
    name, raw = header
    value = raw.decode("latin-1").strip()
    if name == NGINX_HEADER:
        return value
    cert = xfcc_element(value).get("cert")
    if cert is None:
        raise ValueError("no Cert in the X-Forwarded-Client-Cert element")
    return cert


def _first_pem(text: str) -> str:
    """The PEM block `text` starts with."""
    end = text.find(PEM_END)
    if not text.startswith(PEM_BEGIN) or end < 0:
        raise ValueError("not a PEM certificate")
    return text[: end + len(PEM_END)]


def xfcc_element(value: str) -> dict[str, str]:
    """The key/value pairs of an X-Forwarded-Client-Cert header holding exactly one
    element (pairs separated by `;`; a value may be double-quoted, with `\\"` inside).
    Keys are lower-cased; a key given twice keeps its first value.

    Several elements (separated by `,`) are refused: in Envoy's APPEND_FORWARD mode the
    header keeps what the client itself sent, so any element but the proxy's own could be
    forged. Run Envoy with `forward_client_cert_details: SANITIZE_SET`."""
    pairs: dict[str, str] = {}
    key: str | None = None
    buffer: list[str] = []
    quoted = escaped = False

    def finish() -> None:
        nonlocal key
        if key is None:
            if "".join(buffer).strip():
                raise ValueError("a pair without '='")
        else:
            pairs.setdefault(key.strip().lower(), "".join(buffer))
        key = None
        buffer.clear()

    for char in value:
        if quoted:
            if escaped:
                buffer.append(char)
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
            else:
                buffer.append(char)
        elif char == '"':
            quoted = True
        elif char == "=" and key is None:
            key = "".join(buffer)
            buffer.clear()
        elif char == ",":
            raise ValueError("several X-Forwarded-Client-Cert elements: one is expected")
        elif char == ";":
            finish()
        else:
            buffer.append(char)
    if quoted:
        raise ValueError("an unterminated quoted value")
    finish()
    return pairs
