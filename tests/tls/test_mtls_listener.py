"""The client-certificate listener of the real `devreg serve`, against real TLS clients
(Python's ssl, curl, openssl): what it accepts, what it refuses, what the app sees.

asyncio's TLS transport (uvloop's too) closes a refused handshake without sending the alert
first, so a refusal shows as the server hanging up: each refusal is paired with the same
client succeeding once the one thing wrong is put right.
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devreg.pki.ca import CertificateAuthority
from tests.support.server import ECHO_DEVREG, RunningServer, start_server
from tests.tls.helpers import (
    Credential,
    client_context,
    devreg_ca,
    echo,
    https_request,
    issue,
    other_ca,
)

# The server hanging up mid-handshake (not the client refusing locally: that would be
# another SSLError, such as NO_PROTOCOLS_AVAILABLE).
REFUSED = (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError)


class Setup:
    def __init__(self, server: RunningServer, base: Path, partner: CertificateAuthority) -> None:
        self.server = server
        self.base = base
        self.partner = partner  # a further CA configured with --client-ca
        self.port = server.mtls_port or 0
        self.ca_file = server.data_dir / "ca.pem"
        self.ca: CertificateAuthority = devreg_ca(server.data_dir)
        self.device = issue(self.ca, base / "certs", "device-1")

    def context(
        self, credential: Credential | None = None, version: ssl.TLSVersion | None = None
    ) -> ssl.SSLContext:
        return client_context(self.ca_file, credential, version=version)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("mtls")
    stranger, stranger_file = other_ca(base / "partner")
    server = start_server(
        base / "data",
        rate_limit=0,
        mtls=True,
        command=ECHO_DEVREG,
        args=["--client-ca", str(stranger_file), "--tls-name", "devreg.test"],
    )
    try:
        yield Setup(server, base, stranger)
    finally:
        server.stop()


def assert_refused(port: int, context: ssl.SSLContext) -> None:
    with pytest.raises(REFUSED):
        https_request(port, context)


@pytest.mark.parametrize(
    ("version", "name", "number"),
    [(ssl.TLSVersion.TLSv1_3, "TLSv1.3", 0x0304), (ssl.TLSVersion.TLSv1_2, "TLSv1.2", 0x0303)],
)
def test_a_devreg_client_certificate_is_accepted_over_tls_1_2_and_1_3(
    setup: Setup, version: ssl.TLSVersion, name: str, number: int
) -> None:
    answer = https_request(setup.port, setup.context(setup.device, version), "/_test/tls")
    assert answer.status == 200 and answer.version == name
    found = answer.json()
    assert found["tls"] == {
        "server_cert": None,
        "client_cert_chain": [setup.device.pem],
        "client_cert_name": setup.device.subject,
        "client_cert_error": None,
        "tls_version": number,
        "cipher_suite": None,
    }
    assert found["subject"] == setup.device.subject  # what peer_certificate() returns
    assert found["serial"] == format(setup.device.certificate.serial_number, "x")


def test_the_service_answers_on_the_mtls_listener(setup: Setup) -> None:
    answer = https_request(setup.port, setup.context(setup.device), "/healthz")
    assert (answer.status, json.loads(answer.body)) == (200, {"status": "ok"})


def test_the_server_certificate_names_the_configured_host(setup: Setup) -> None:
    for host in ("localhost", "127.0.0.1", "devreg.test"):
        answer = https_request(setup.port, setup.context(setup.device), host=host)
        assert answer.status == 200
    with pytest.raises(ssl.SSLCertVerificationError):
        https_request(setup.port, setup.context(setup.device), host="other.test")


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1])
def test_tls_before_1_2_is_refused(setup: Setup, version: ssl.TLSVersion) -> None:
    assert_refused(setup.port, setup.context(setup.device, version))


def test_openssl_s_client_cannot_speak_tls_1_1(setup: Setup) -> None:
    def s_client(*options: str) -> str:
        done = subprocess.run(
            [
                "openssl",
                "s_client",
                "-connect",
                f"127.0.0.1:{setup.port}",
                "-CAfile",
                str(setup.ca_file),
                "-cert",
                str(setup.device.cert_path),
                "-key",
                str(setup.device.key_path),
                *options,
            ],
            input="",
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return done.stdout + done.stderr

    assert "Verify return code: 0 (ok)" in s_client("-tls1_2")
    refused = s_client("-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert "Cipher is (NONE)" in refused or "Cipher    : 0000" in refused, refused


@pytest.mark.parametrize("cipher", ["AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA"])
def test_weak_tls_1_2_suites_are_refused(setup: Setup, cipher: str) -> None:
    context = setup.context(setup.device, ssl.TLSVersion.TLSv1_2)
    context.set_ciphers(cipher)  # no forward secrecy / no AEAD
    assert_refused(setup.port, context)
    context.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305")
    assert https_request(setup.port, context).cipher == "ECDHE-ECDSA-CHACHA20-POLY1305"


@pytest.mark.parametrize("version", [None, ssl.TLSVersion.TLSv1_2])
def test_no_client_certificate_is_refused(setup: Setup, version: ssl.TLSVersion | None) -> None:
    assert_refused(setup.port, setup.context(None, version))


@pytest.mark.parametrize("version", [None, ssl.TLSVersion.TLSv1_2])
def test_a_certificate_from_another_ca_is_refused(
    setup: Setup, version: ssl.TLSVersion | None
) -> None:
    stranger, _ = other_ca(setup.base / "stranger")
    foreign = issue(stranger, setup.base / "certs", "foreign")
    assert_refused(setup.port, setup.context(foreign, version))


def test_a_configured_client_ca_is_trusted(setup: Setup) -> None:
    credential = issue(setup.partner, setup.base / "certs", "partner-device")
    found = echo(setup.port, setup.context(credential))
    assert found["subject"] == credential.subject


def test_an_expired_or_server_only_certificate_is_refused(setup: Setup) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    expired = issue(
        setup.ca, setup.base / "certs", "expired", lifetime=dt.timedelta(days=1), now=past
    )
    assert_refused(setup.port, setup.context(expired))
    server_only = issue(setup.ca, setup.base / "certs", "server-only", client=False)
    assert_refused(setup.port, setup.context(server_only))


def test_curl_with_cert_key_and_cacert(setup: Setup) -> None:
    def curl(*options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "curl",
                "-sS",
                "--max-time",
                "20",
                "--cacert",
                str(setup.ca_file),
                *options,
                f"https://localhost:{setup.port}/_test/tls",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    done = curl("--cert", str(setup.device.cert_path), "--key", str(setup.device.key_path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["subject"] == setup.device.subject
    done = curl(
        "--tlsv1.2",
        "--tls-max",
        "1.2",
        "--cert",
        str(setup.device.cert_path),
        "--key",
        str(setup.device.key_path),
    )
    assert json.loads(done.stdout)["tls"]["tls_version"] == 0x0303
    assert curl().returncode != 0  # no certificate: no answer


def test_the_plain_listener_has_no_certificate(setup: Setup) -> None:
    import httpx

    response = httpx.get(setup.server.base_url + "/_test/tls")
    assert response.json()["tls"] is None
