"""`verify_client_certificate`: what devreg accepts from a proxy that vouches for a client."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from devreg.pki.ca import CertificateAuthority, create_ca
from devreg.pki.verify import verify_client_certificate
from tests.tls.helpers import devreg_ca, issue, other_ca


def test_a_client_certificate_of_a_trusted_ca_is_accepted(tmp_path: Path) -> None:
    ca = devreg_ca(tmp_path / "data")
    device = issue(ca, tmp_path, "device-1")
    assert verify_client_certificate(device.certificate, [ca.certificate])
    # devreg's CA among several trusted ones
    assert verify_client_certificate(device.certificate, [create_ca().certificate, ca.certificate])


def test_another_cas_certificate_is_refused(tmp_path: Path) -> None:
    ca = devreg_ca(tmp_path / "data")
    stranger, _ = other_ca(tmp_path / "other")
    foreign = issue(stranger, tmp_path, "foreign")
    assert not verify_client_certificate(foreign.certificate, [ca.certificate])
    assert verify_client_certificate(foreign.certificate, [ca.certificate, stranger.certificate])
    assert not verify_client_certificate(foreign.certificate, [])


def test_a_certificate_naming_our_ca_but_signed_by_another_key_is_refused(
    tmp_path: Path,
) -> None:
    ca = devreg_ca(tmp_path / "data")
    impostor = CertificateAuthority(ca.certificate, create_ca().key)
    forged = issue(impostor, tmp_path, "device-x")
    assert forged.certificate.issuer == ca.certificate.subject
    assert not verify_client_certificate(forged.certificate, [ca.certificate])


def test_expired_and_not_yet_valid_certificates_are_refused(tmp_path: Path) -> None:
    ca = devreg_ca(tmp_path / "data")
    device = issue(ca, tmp_path, "device-1", lifetime=dt.timedelta(days=1))
    # Taken after the issue: a time taken at import is stale by the time a long run gets here.
    now = dt.datetime.now(dt.UTC)
    assert verify_client_certificate(device.certificate, [ca.certificate], now=now)
    assert not verify_client_certificate(
        device.certificate, [ca.certificate], now=now + dt.timedelta(days=2)
    )
    assert not verify_client_certificate(
        device.certificate, [ca.certificate], now=now - dt.timedelta(hours=1)
    )
    expired = issue(
        ca, tmp_path, "old", lifetime=dt.timedelta(days=1), now=now - dt.timedelta(days=3)
    )
    assert not verify_client_certificate(expired.certificate, [ca.certificate])


def test_a_server_certificate_or_the_ca_itself_is_no_client_certificate(tmp_path: Path) -> None:
    ca = devreg_ca(tmp_path / "data")
    server = issue(ca, tmp_path, "server", client=False)
    assert not verify_client_certificate(server.certificate, [ca.certificate])
    assert not verify_client_certificate(ca.certificate, [ca.certificate])
