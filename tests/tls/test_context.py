"""The mTLS listener's TLS settings, read back from the context itself."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from devreg.tls.context import client_ca_paths, load_trusted_cas, mtls_context
from devreg.tls.server_cert import ensure_server_certificate
from tests.tls.helpers import devreg_ca, other_ca


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    ensure_server_certificate(data)
    return data


def test_tls_1_2_minimum_client_certificate_required_forward_secret_aead_suites(
    data_dir: Path, tmp_path: Path
) -> None:
    _, extra = other_ca(tmp_path / "partner")
    paths = client_ca_paths(data_dir, [extra])
    assert paths == [data_dir / "ca.pem", extra]
    context = mtls_context(data_dir / "server.pem", data_dir / "server.key", paths)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.cert_store_stats()["x509_ca"] == 2
    tls12 = [c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 and all(name.startswith("ECDHE-") for name in tls12), tls12
    assert all("GCM" in name or "CHACHA20" in name for name in tls12), tls12
    assert any(c["protocol"] == "TLSv1.3" for c in context.get_ciphers())
    assert context.options & ssl.OP_NO_COMPRESSION and context.options & ssl.OP_NO_RENEGOTIATION


def test_trusted_cas_for_forwarded_certificates(data_dir: Path, tmp_path: Path) -> None:
    partner, extra = other_ca(tmp_path / "partner")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(partner.pem + devreg_ca(data_dir).pem)  # a file may hold several
    trusted = load_trusted_cas(client_ca_paths(data_dir, [extra, bundle]))
    ours = devreg_ca(data_dir).certificate
    assert trusted == [ours, partner.certificate, partner.certificate, ours]


@pytest.mark.parametrize("content", [None, b"", b"not a certificate\n"])
def test_a_bad_client_ca_file_is_named(
    data_dir: Path, tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "client-ca.pem"
    if content is not None:
        path.write_bytes(content)
    paths = client_ca_paths(data_dir, [path])
    with pytest.raises(ValueError, match=f"client CA file {path}"):
        load_trusted_cas(paths)
    with pytest.raises(ValueError, match=f"client CA file {path}"):
        mtls_context(data_dir / "server.pem", data_dir / "server.key", paths)
