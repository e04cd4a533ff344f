"""The client-certificate listener's TLS settings, and the CAs trusted for client certs."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509

from devreg.pki.ca import CA_CERT_FILE

# TLS 1.2 suites: forward secrecy and AEAD only. TLS 1.3's suites are OpenSSL's defaults.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def client_ca_paths(data_dir: Path, extra: Sequence[Path] = ()) -> list[Path]:
    """devreg's CA first, then the configured extra CA files."""
    return [data_dir / CA_CERT_FILE, *extra]


def mtls_context(
    cert_path: Path, key_path: Path, ca_paths: Sequence[Path], *, require_client_cert: bool = True
) -> ssl.SSLContext:
    """TLS 1.2+, a client certificate verified against `ca_paths`: required, or (for EST,
    where a device may enroll with a one-time secret instead) verified when presented."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_SINGLE_ECDH_USE
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.load_cert_chain(cert_path, key_path)
    context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    for path in ca_paths:
        try:
            context.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"client CA file {path}: cannot be loaded ({exc})") from None
    context.set_alpn_protocols(["http/1.1"])
    return context


def load_trusted_cas(ca_paths: Sequence[Path]) -> list[x509.Certificate]:
    """Every certificate in the CA files, for checking forwarded client certificates."""
    trusted: list[x509.Certificate] = []
    for path in ca_paths:
        try:
            trusted += x509.load_pem_x509_certificates(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ValueError(f"client CA file {path}: cannot be loaded ({exc})") from None
    return trusted
