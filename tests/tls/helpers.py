"""Real certificates and real TLS clients for the listener tests."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import urllib.parse
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devreg.pki.ca import CertificateAuthority, create_ca, load_or_create_ca


@dataclass(frozen=True)
class Credential:
    """A client certificate and its key, in files as a device keeps them."""

    certificate: x509.Certificate
    cert_path: Path
    key_path: Path

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()


def issue(
    ca: CertificateAuthority,
    directory: Path,
    name: str,
    *,
    client: bool = True,
    lifetime: dt.timedelta = dt.timedelta(days=30),
    now: dt.datetime | None = None,
) -> Credential:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme, Inc."),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    certificate = ca.issue(key.public_key(), subject, lifetime=lifetime, client=client, now=now)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return Credential(certificate, cert_path, key_path)


def devreg_ca(data_dir: Path) -> CertificateAuthority:
    return load_or_create_ca(data_dir)


def other_ca(directory: Path) -> tuple[CertificateAuthority, Path]:
    """A CA devreg knows nothing of, and its certificate file."""
    ca = create_ca()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "other-ca.pem"
    path.write_bytes(ca.pem)
    return ca, path


def client_context(
    ca_file: Path,
    credential: Credential | None = None,
    *,
    version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    """A client that trusts `ca_file` for the server, presents `credential`, and speaks
    only `version` when one is given."""
    context = ssl.create_default_context(cafile=str(ca_file))
    if version is not None:
        if version < ssl.TLSVersion.TLSv1_2:
            context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer old versions
        with warnings.catch_warnings():  # TLS 1.0 and 1.1 are deprecated: that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = context.maximum_version = version
    if credential is not None:
        context.load_cert_chain(credential.cert_path, credential.key_path)
    return context


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    version: str | None  # the TLS version negotiated
    cipher: str | None

    def json(self) -> Any:
        return json.loads(self.body)


def https_request(
    port: int,
    context: ssl.SSLContext,
    path: str = "/healthz",
    host: str = "localhost",
) -> Answer:
    """One HTTP/1.1 GET over a fresh TLS connection. Raises ssl.SSLError or OSError when
    the server refuses the handshake (with TLS 1.3 a missing or refused client certificate
    is reported by the server after the client's side of the handshake: on the first read)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with context.wrap_socket(raw, server_hostname=host) as tls:
        version, cipher = tls.version(), (tls.cipher() or ("",))[0]
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    if not data:
        raise ConnectionResetError("the server closed the connection without an answer")
    head, _, body = data.partition(b"\r\n\r\n")
    return Answer(int(head.split(b" ", 2)[1]), body, version, cipher)


def echo(port: int, context: ssl.SSLContext) -> dict[str, Any]:
    answer = https_request(port, context, "/_test/tls")
    assert answer.status == 200, answer.body
    found: dict[str, Any] = answer.json()
    return found


def nginx_escaped(pem: str) -> str:
    """What nginx's $ssl_client_escaped_cert makes of a PEM certificate."""
    return urllib.parse.quote(pem, safe="")
