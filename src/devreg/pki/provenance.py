"""Which credential authorised an issuance, as recorded on the certificate: the incident
trail, and what a keyCompromise revocation follows to what a stolen certificate minted."""

from __future__ import annotations

import msgspec

from devreg.core.ids import render_uuid
from devreg.core.records import Caller, Certificate

OPERATOR = "operator"


class IssuedBy(msgspec.Struct, frozen=True):
    label: str  # "api_key:<uuid>", "certificate:<uuid>", "enrollment_secret:<uuid>"
    parent_id: bytes | None = None  # the certificate that authenticated the issuance

    @classmethod
    def api_key(cls, caller: Caller) -> IssuedBy:
        """The back office's API key (or the key a bearer token came from)."""
        kind, _, key = caller.credential_id.partition(":")
        if kind == "key" and len(key) == 32:
            return cls("api_key:" + render_uuid(bytes.fromhex(key)))
        return cls(caller.credential_id)

    @classmethod
    def certificate(cls, cert: Certificate) -> IssuedBy:
        """The device's own certificate: a re-enrollment or renewal it asked for."""
        return cls("certificate:" + render_uuid(cert.id), parent_id=cert.id)

    @classmethod
    def enrollment_secret(cls, secret_id: bytes) -> IssuedBy:
        return cls("enrollment_secret:" + render_uuid(secret_id))
