"""Proxy mode in-process: the ASGI wrapper with real certificates and real header values
as nginx and Envoy send them."""

from __future__ import annotations

import logging
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from devreg.pki.ca import CertificateAuthority
from devreg.tls.client_cert import peer_certificate
from devreg.tls.forwarded import ForwardedClientCert, xfcc_element
from tests.tls.helpers import Credential, devreg_ca, issue, nginx_escaped, other_ca

Scope = dict[str, Any]


class Recorder:
    """The innermost app: keeps the scopes it was called with."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.scopes.append(scope)


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return devreg_ca(tmp_path / "data")


@pytest.fixture
def device(ca: CertificateAuthority, tmp_path: Path) -> Credential:
    return issue(ca, tmp_path / "certs", "device-1")


def http_scope(client: str, *headers: tuple[str, str]) -> Scope:
    return {
        "type": "http",
        "client": (client, 50000),
        "headers": [(b"host", b"devreg")]
        + [(name.lower().encode(), value.encode("latin-1")) for name, value in headers],
    }


async def through(wrapper: ForwardedClientCert, recorder: Recorder, scope: Scope) -> Scope:
    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        pass

    await wrapper(scope, receive, send)
    return recorder.scopes[-1]


def envoy_xfcc(pem: str, *, quoted: bool = True) -> str:
    cert = urllib.parse.quote(pem, safe="")
    value = f'"{cert}"' if quoted else cert
    return (
        "By=spiffe://cluster.local/ns/default/sa/devreg;"
        "Hash=0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0;"
        f'Cert={value};Subject="CN=device-1,O=Acme\\, Inc.";URI=spiffe://cluster.local/dev'
    )


@pytest.fixture
def wrapped(ca: CertificateAuthority) -> tuple[ForwardedClientCert, Recorder]:
    recorder = Recorder()
    return ForwardedClientCert(recorder, ["127.0.0.1", "10.0.0.0/8"], [ca.certificate]), recorder


def assert_has(scope: Scope, device: Credential) -> None:
    tls = scope["extensions"]["tls"]
    assert tls == {
        "server_cert": None,
        "client_cert_chain": [device.pem],
        "client_cert_name": device.subject,
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
    }
    assert peer_certificate(scope) == device.certificate
    names = [name for name, _ in scope["headers"]]
    assert b"x-ssl-client-cert" not in names and b"x-forwarded-client-cert" not in names
    assert b"host" in names


async def test_nginx_header_from_a_trusted_proxy(
    wrapped: tuple[ForwardedClientCert, Recorder], device: Credential
) -> None:
    wrapper, recorder = wrapped
    scope = await through(
        wrapper, recorder, http_scope("127.0.0.1", ("X-SSL-Client-Cert", nginx_escaped(device.pem)))
    )
    assert_has(scope, device)


@pytest.mark.parametrize("quoted", [True, False])
async def test_envoy_xfcc_from_a_trusted_proxy(
    wrapped: tuple[ForwardedClientCert, Recorder], device: Credential, quoted: bool
) -> None:
    wrapper, recorder = wrapped
    xfcc = envoy_xfcc(device.pem, quoted=quoted)
    scope = http_scope("10.20.30.40", ("X-Request-Id", "x"), ("X-Forwarded-Client-Cert", xfcc))
    scope = await through(wrapper, recorder, scope)
    assert_has(scope, device)


async def test_xfcc_with_several_elements_gives_no_certificate(
    wrapped: tuple[ForwardedClientCert, Recorder],
    device: Credential,
    ca: CertificateAuthority,
    tmp_path: Path,
) -> None:
    """With Envoy's APPEND_FORWARD a client can put any (public) certificate first and the
    proxy appends the real one: neither can be trusted, so neither is taken."""
    wrapper, recorder = wrapped
    real = issue(ca, tmp_path / "certs", "proxy-hop")
    for xfcc in (
        envoy_xfcc(device.pem) + "," + envoy_xfcc(real.pem),
        envoy_xfcc(real.pem) + "," + envoy_xfcc(device.pem),
    ):
        scope = await through(
            wrapper, recorder, http_scope("127.0.0.1", ("x-forwarded-client-cert", xfcc))
        )
        assert peer_certificate(scope) is None


async def test_pem_lines_wrapped_otherwise_are_given_to_handlers_in_one_form(
    wrapped: tuple[ForwardedClientCert, Recorder], device: Credential
) -> None:
    wrapper, recorder = wrapped
    one_line = device.pem.replace("\n", " ").strip()  # as some proxies forward it
    scope = await through(
        wrapper, recorder, http_scope("127.0.0.1", ("X-SSL-Client-Cert", one_line))
    )
    assert_has(scope, device)


async def test_an_ipv4_mapped_ipv6_peer_is_its_ipv4_address(
    wrapped: tuple[ForwardedClientCert, Recorder], device: Credential
) -> None:
    wrapper, recorder = wrapped
    scope = await through(
        wrapper,
        recorder,
        http_scope("::ffff:127.0.0.1", ("X-SSL-Client-Cert", nginx_escaped(device.pem))),
    )
    assert_has(scope, device)


@pytest.mark.parametrize("peer", ["192.168.1.10", "11.0.0.1", "::1", "not-an-ip", None])
async def test_an_untrusted_peers_headers_are_ignored_and_removed(
    wrapped: tuple[ForwardedClientCert, Recorder], device: Credential, peer: str | None
) -> None:
    wrapper, recorder = wrapped
    scope = http_scope(
        peer or "-",
        ("X-SSL-Client-Cert", nginx_escaped(device.pem)),
        ("X-Forwarded-Client-Cert", envoy_xfcc(device.pem)),
    )
    if peer is None:
        scope["client"] = None
    seen = await through(wrapper, recorder, scope)
    assert "extensions" not in seen
    assert peer_certificate(seen) is None
    assert seen["headers"] == [(b"host", b"devreg")]


async def test_without_the_headers_the_scope_is_untouched(
    wrapped: tuple[ForwardedClientCert, Recorder],
) -> None:
    wrapper, recorder = wrapped
    scope = http_scope("127.0.0.1", ("accept", "*/*"))
    headers = scope["headers"]
    seen = await through(wrapper, recorder, scope)
    assert seen is scope and seen["headers"] is headers and "extensions" not in seen


def malformed(pem: str) -> list[list[tuple[str, str]]]:
    escaped = nginx_escaped(pem)
    return [
        [("X-SSL-Client-Cert", "garbage")],
        [("X-SSL-Client-Cert", "")],
        [("X-SSL-Client-Cert", escaped[: len(escaped) // 2])],  # truncated
        [("X-SSL-Client-Cert", escaped.replace("MII", "MIJ", 1))],  # corrupted DER
        [("X-SSL-Client-Cert", "x" + escaped)],  # not PEM
        [("X-SSL-Client-Cert", escaped + "%ZZ%ff")],
        [("X-SSL-Client-Cert", escaped), ("X-SSL-Client-Cert", escaped)],  # twice
        [("X-SSL-Client-Cert", escaped), ("X-Forwarded-Client-Cert", envoy_xfcc(pem))],
        [("X-Forwarded-Client-Cert", "By=spiffe://x;Hash=abc")],  # no Cert
        [("X-Forwarded-Client-Cert", 'Cert="' + escaped)],  # unterminated quote
        [("X-Forwarded-Client-Cert", "Cert")],  # no '='
        [("X-Forwarded-Client-Cert", "By=x,Cert=" + escaped)],  # Cert not in the first
        [("X-Forwarded-Client-Cert", "")],
    ]


async def test_a_malformed_header_from_a_trusted_proxy_gives_no_certificate(
    wrapped: tuple[ForwardedClientCert, Recorder],
    device: Credential,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrapper, recorder = wrapped
    for headers in malformed(device.pem):
        seen = await through(wrapper, recorder, http_scope("127.0.0.1", *headers))
        assert peer_certificate(seen) is None, headers
        assert seen["headers"] == [(b"host", b"devreg")], headers
    assert "malformed client certificate header from proxy 127.0.0.1" in caplog.text
    assert "MII" not in caplog.text  # the header itself is not logged


async def test_a_certificate_devreg_does_not_trust_gives_none(
    wrapped: tuple[ForwardedClientCert, Recorder],
    ca: CertificateAuthority,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The proxy may trust more than we do (or be misconfigured): we check again."""
    wrapper, recorder = wrapped
    stranger, _ = other_ca(tmp_path / "other")
    for credential in (
        issue(stranger, tmp_path / "certs", "foreign"),
        issue(ca, tmp_path / "certs", "server-cert", client=False),
    ):
        for header in (
            ("X-SSL-Client-Cert", nginx_escaped(credential.pem)),
            ("X-Forwarded-Client-Cert", envoy_xfcc(credential.pem)),
        ):
            seen = await through(wrapper, recorder, http_scope("127.0.0.1", header))
            assert peer_certificate(seen) is None
    assert "untrusted client certificate from proxy 127.0.0.1" in caplog.text


async def test_client_cas_besides_devregs_are_trusted(tmp_path: Path) -> None:
    stranger, _ = other_ca(tmp_path / "other")
    recorder = Recorder()
    wrapper = ForwardedClientCert(
        recorder, ["127.0.0.1"], [devreg_ca(tmp_path / "data").certificate, stranger.certificate]
    )
    foreign = issue(stranger, tmp_path / "certs", "foreign")
    seen = await through(
        wrapper,
        recorder,
        http_scope("127.0.0.1", ("X-SSL-Client-Cert", nginx_escaped(foreign.pem))),
    )
    assert_has(seen, foreign)


async def test_existing_extensions_are_kept_and_lifespan_passes(
    wrapped: tuple[ForwardedClientCert, Recorder], device: Credential
) -> None:
    wrapper, recorder = wrapped
    scope = http_scope("127.0.0.1", ("X-SSL-Client-Cert", nginx_escaped(device.pem)))
    scope["extensions"] = {"http.response.trailers": {}}
    seen = await through(wrapper, recorder, scope)
    assert set(seen["extensions"]) == {"http.response.trailers", "tls"}
    lifespan = {"type": "lifespan"}
    assert await through(wrapper, recorder, lifespan) is lifespan


def test_peer_certificate_without_an_extension() -> None:
    assert peer_certificate({"type": "http"}) is None
    assert peer_certificate({"type": "http", "extensions": {}}) is None
    assert peer_certificate({"type": "http", "extensions": {"tls": {}}}) is None
    assert peer_certificate({"extensions": {"tls": {"client_cert_chain": []}}}) is None


@pytest.mark.parametrize(
    ("value", "pairs"),
    [
        ("By=a;Cert=b", {"by": "a", "cert": "b"}),
        ('Subject="/C=US/CN=x, y;z";URI=u', {"subject": "/C=US/CN=x, y;z", "uri": "u"}),
        ('Subject="a \\"quoted\\" \\\\ name"', {"subject": 'a "quoted" \\ name'}),
        ("DNS=a;DNS=b", {"dns": "a"}),
        ("", {}),
        (";", {}),
        ("URI=http://x/?a=b", {"uri": "http://x/?a=b"}),
    ],
)
def test_xfcc_element(value: str, pairs: dict[str, str]) -> None:
    assert xfcc_element(value) == pairs


@pytest.mark.parametrize("value", ['Cert="abc', "Cert", "a=b;c", 'By="x', "Hash=1,Hash=2"])
def test_xfcc_malformed(value: str) -> None:
    with pytest.raises(ValueError):
        xfcc_element(value)


def test_warnings_go_to_the_devreg_tls_logger() -> None:
    assert logging.getLogger("devreg.tls").name == "devreg.tls"
