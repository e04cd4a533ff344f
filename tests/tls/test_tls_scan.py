"""The TLS listeners (client-auth and EST) scanned from outside with `sslscan`: only TLS 1.2
and 1.3, only forward-secret AEAD suites of 128 bits or more (tests/support/tls_scan.py
holds the rules; `.ci/run` also runs it on its own). Without sslscan the scan is skipped,
with the reason, except in CI (DEVREG_REQUIRE_SERVICES=1), where that is a failure."""

from __future__ import annotations

import shutil
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from devreg.tls.server_cert import ensure_server_certificate
from tests.conftest import service_missing
from tests.support.tls_scan import parse, problems, scan_devreg, sslscan

GOOD = """<?xml version="1.0" encoding="UTF-8"?>
<document title="SSLScan Results" version="2.0.7" web="http://github.com/rbsec/sslscan">
 <ssltest host="127.0.0.1" sniname="localhost" port="8443">
  <protocol type="ssl" version="2" enabled="0" />
  <protocol type="ssl" version="3" enabled="0" />
  <protocol type="tls" version="1.0" enabled="0" />
  <protocol type="tls" version="1.1" enabled="0" />
  <protocol type="tls" version="1.2" enabled="1" />
  <protocol type="tls" version="1.3" enabled="1" />
  <renegotiation supported="0" secure="0" />
  <compression supported="0" />
  <heartbleed sslversion="TLSv1.3" vulnerable="0" />
  <cipher status="preferred" sslversion="TLSv1.3" bits="256" cipher="TLS_AES_256_GCM_SHA384"
          id="0x1302" strength="strong" curve="25519" ecdhebits="253" />
  <cipher status="accepted" sslversion="TLSv1.2" bits="128"
          cipher="ECDHE-ECDSA-AES128-GCM-SHA256" id="0xC02B" strength="strong" />
  <group sslversion="TLSv1.3" bits="128" name="x25519" id="0x001d" />
 </ssltest>
</document>
"""


def test_the_rules_pass_a_strong_configuration() -> None:
    scan = parse(GOOD)
    assert scan.offered == {"TLSv1.2", "TLSv1.3"}
    assert problems(scan) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (('"ssl" version="3" enabled="0"', '"ssl" version="3" enabled="1"'), "SSLv3 is offered"),
        (('"1.0" enabled="0"', '"1.0" enabled="1"'), "TLSv1.0 is offered"),
        (('"1.1" enabled="0"', '"1.1" enabled="1"'), "TLSv1.1 is offered"),
        (('"1.3" enabled="1"', '"1.3" enabled="0"'), "TLSv1.3 is not offered"),
        (("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-RC4-SHA"), "weak cipher suite"),
        (("ECDHE-ECDSA-AES128-GCM-SHA256", "DES-CBC3-SHA"), "weak cipher suite"),
        (("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA"), "not a forward-secret"),
        (("ECDHE-ECDSA-AES128-GCM-SHA256", "AES128-GCM-SHA256"), "not a forward-secret"),
        (("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-NULL-SHA"), "weak cipher suite"),
        (("ECDHE-ECDSA-AES128-GCM-SHA256", "EXP-RC4-MD5"), "weak cipher suite"),
        (('bits="128"\n          cipher', 'bits="56"\n          cipher'), "fewer than 128 bits"),
        (('strength="strong" />', 'strength="medium" />'), "rates it 'medium'"),
        (("TLS_AES_256_GCM_SHA384", "TLS_AES_128_CCM_8_SHA256"), "not a standard TLS 1.3"),
        (('bits="128" name="x25519"', 'bits="80" name="ffdhe1024"'), "group ffdhe1024: 80"),
        (('<compression supported="0"', '<compression supported="1"'), "compression"),
        (('<renegotiation supported="0"', '<renegotiation supported="1"'), "renegotiation"),
        (('vulnerable="0"', 'vulnerable="1"'), "Heartbleed"),
    ],
)
def test_the_rules_catch_what_is_weak(change: tuple[str, str], problem: str) -> None:
    old, new = change
    assert old in GOOD
    found = problems(parse(GOOD.replace(old, new)))
    assert len(found) == 1 and problem in found[0], found


@pytest.fixture(scope="module")
def scanner() -> None:
    if shutil.which("sslscan") is None:
        service_missing("sslscan is not installed (apt-get install -y sslscan)")


def test_devreg_tls_listeners_offer_only_strong_tls(scanner: None, tmp_path: Path) -> None:
    scans = scan_devreg(tmp_path)
    assert len(scans) == 2
    for scan in scans:
        assert scan.offered == {"TLSv1.2", "TLSv1.3"}, scan
        assert problems(scan) == [], scan
        assert {c.protocol for c in scan.ciphers} == {"TLSv1.2", "TLSv1.3"}


@pytest.fixture
def weak_server(tmp_path: Path) -> Iterator[int]:
    """A TLS server that offers old versions and CBC suites: what the scan must catch."""
    cert, key = ensure_server_certificate(tmp_path / "weak")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(2)
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except OSError:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_the_scan_catches_a_weak_server(scanner: None, weak_server: int) -> None:
    found = problems(sslscan("127.0.0.1", weak_server))
    assert any("not a forward-secret AEAD suite" in p or "weak cipher" in p for p in found), found
