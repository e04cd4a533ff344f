"""Checking a client certificate that a proxy forwarded: the proxy verified it, and so do we
(a misconfigured or compromised proxy must not be able to vouch for any certificate)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

# RFC 5280 path validation with the Web PKI profile (cryptography's), except that a device
# certificate need not carry a subjectAltName: it is named by its subject or its serial.
_EE_POLICY = ExtensionPolicy.webpki_defaults_ee().may_be_present(
    x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
)
_CA_POLICY = ExtensionPolicy.webpki_defaults_ca()


def verify_client_certificate(
    cert: x509.Certificate,
    trusted_cas: Sequence[x509.Certificate],
    now: dt.datetime | None = None,
) -> bool:
    """True when `cert` is valid now, allowed for client authentication and issued by one
    of `trusted_cas` (devreg's CA or a configured client CA); False otherwise."""
    if not trusted_cas:
        return False
    verifier = (
        PolicyBuilder()
        .store(Store(list(trusted_cas)))
        .time(now or dt.datetime.now(dt.UTC))
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
        .build_client_verifier()
    )
    try:
        verifier.verify(cert, [])
    except VerificationError:
        return False
    return True
