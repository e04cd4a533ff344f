"""Proxy mode end to end: the real `devreg serve --trusted-proxy`, spoken to over HTTP as a
proxy would, and behind a real nginx terminating mutual TLS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import service_missing
from tests.support.nginx import NGINX, NginxFailed, nginx_in_front
from tests.support.server import (
    ECHO_DEVREG,
    RunningServer,
    start_server,
)
from tests.tls.helpers import (
    Credential,
    client_context,
    devreg_ca,
    echo,
    https_request,
    issue,
    nginx_escaped,
    other_ca,
)

ECHO = "/_test/tls"


def proxy_server(base: Path, trusted: str, name: str) -> RunningServer:
    return start_server(
        base / name, rate_limit=0, command=ECHO_DEVREG, args=["--trusted-proxy", trusted]
    )


@pytest.fixture(scope="module")
def trusting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """devreg trusting this machine (127.0.0.0/8) as its proxy."""
    server = proxy_server(tmp_path_factory.mktemp("proxy"), "127.0.0.0/8", "data")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def device(trusting: RunningServer) -> Credential:
    return issue(devreg_ca(trusting.data_dir), trusting.data_dir.parent / "certs", "device-1")


def get_echo(server: RunningServer, headers: dict[str, str]) -> dict[str, Any]:
    response = httpx.get(server.base_url + ECHO, headers=headers)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def test_nginx_and_envoy_headers_from_a_trusted_proxy(
    trusting: RunningServer, device: Credential
) -> None:
    escaped = nginx_escaped(device.pem)
    for headers in (
        {"X-SSL-Client-Cert": escaped},
        {"X-Forwarded-Client-Cert": f'Hash=00ff;Cert="{escaped}";Subject="{device.subject}"'},
    ):
        found = get_echo(trusting, headers)
        assert found["subject"] == device.subject
        assert found["tls"]["client_cert_chain"] == [device.pem]
        assert "x-ssl-client-cert" not in found["headers"]
        assert "x-forwarded-client-cert" not in found["headers"]


def test_forwarded_certificates_devreg_does_not_trust_are_dropped(
    trusting: RunningServer, tmp_path: Path
) -> None:
    stranger, _ = other_ca(tmp_path)
    foreign = issue(stranger, tmp_path, "foreign")
    for value in (nginx_escaped(foreign.pem), "not a certificate"):
        found = get_echo(trusting, {"X-SSL-Client-Cert": value})
        assert found["tls"] is None and found["subject"] is None
        assert "x-ssl-client-cert" not in found["headers"]


def test_x_forwarded_for_cannot_make_a_peer_trusted(tmp_path: Path, device: Credential) -> None:
    """A peer that is not a configured proxy can neither name the client with
    X-Forwarded-For nor forward a certificate, whatever address the header claims."""
    server = proxy_server(tmp_path, "10.9.9.9", "data")
    try:
        # devreg's CA differs per data dir: issue from this server's CA
        credential = issue(devreg_ca(server.data_dir), tmp_path / "certs", "device-2")
        found = get_echo(
            server,
            {"X-SSL-Client-Cert": nginx_escaped(credential.pem), "X-Forwarded-For": "10.9.9.9"},
        )
        assert found["client"][0] == "127.0.0.1"  # the header is not believed...
        assert found["tls"] is None  # ...nor is the certificate from an untrusted peer
        assert "x-ssl-client-cert" not in found["headers"]
    finally:
        server.stop()


def test_the_proxys_x_forwarded_for_names_the_client_in_the_log(
    trusting: RunningServer, device: Credential
) -> None:
    found = get_echo(
        trusting,
        {"X-SSL-Client-Cert": nginx_escaped(device.pem), "X-Forwarded-For": "198.51.100.7"},
    )
    assert found["subject"] == device.subject
    assert found["client"][0] == "198.51.100.7"


# --- a real nginx in front ------------------------------------------------------------


@pytest.fixture
def nginx(trusting: RunningServer, tmp_path: Path) -> Iterator[int]:
    if NGINX is None:
        service_missing("nginx is not installed (.ci/run installs it: apt-get install nginx-light)")
    try:
        with nginx_in_front(trusting, tmp_path) as port:
            yield port
    except NginxFailed as exc:
        pytest.fail(str(exc))


def test_behind_nginx_terminating_mutual_tls(
    trusting: RunningServer, device: Credential, nginx: int
) -> None:
    ca_file = trusting.data_dir / "ca.pem"
    found = echo(nginx, client_context(ca_file, device))
    assert found["subject"] == device.subject
    assert found["tls"]["client_cert_chain"] == [device.pem]
    assert found["tls"]["client_cert_name"] == device.subject
    assert "x-ssl-client-cert" not in found["headers"]
    # nginx refuses a client without a certificate before devreg sees anything
    answer = https_request(nginx, client_context(ca_file), ECHO)
    assert answer.status == 400
