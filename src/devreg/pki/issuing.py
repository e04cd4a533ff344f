"""Issuing device certificates: from a PKCS#10 request, or with a key made here and
returned once. The rules (key policy, one key per device) live here, apart from HTTP."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence

import msgspec
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devreg.changelog.entries import Action
from devreg.core import reach
from devreg.core.clock import now_us
from devreg.core.errors import Forbidden, InvalidInput
from devreg.core.ids import new_id, render_uuid
from devreg.core.paging import check_page
from devreg.core.records import Caller, Certificate, Device, Origin
from devreg.core.store import DeviceStore, DuplicateValue, OverLimit, ParentRevoked
from devreg.pki.admission import IssuanceLimits, over_cap
from devreg.pki.ca import CertificateAuthority
from devreg.pki.keys import PublicKey, check_public_key, public_key_hash
from devreg.pki.provenance import IssuedBy
from devreg.pki.verify import verify_client_certificate

DEFAULT_LIFETIME = dt.timedelta(days=90)
MAX_CSR_BYTES = 64 * 1024
ISSUER_DEVREG = "devreg"


class Issued(msgspec.Struct, frozen=True):
    certificate: Certificate
    private_key_pem: str | None = None


def parse_csr(pem: str) -> x509.CertificateSigningRequest:
    """A PEM CSR whose key is accepted and whose signature verifies, or InvalidInput saying
    what is wrong."""
    if len(pem) > MAX_CSR_BYTES:
        raise InvalidInput("csr is too large", "csr")
    try:
        csr = x509.load_pem_x509_csr(pem.encode("utf-8"))
    except ValueError:
        raise InvalidInput("csr is not a PEM-encoded PKCS#10 certificate request", "csr") from None
    return check_csr(csr)


def csr_key(csr: x509.CertificateSigningRequest) -> PublicKey:
    """The request's public key, if the key policy accepts it: cheap, no signature checked."""
    try:
        key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm):  # a key cryptography cannot load
        raise InvalidInput("csr public key cannot be read", "csr") from None
    return check_public_key(key)


def check_csr(csr: x509.CertificateSigningRequest) -> x509.CertificateSigningRequest:
    """The request, if its key is accepted (checked first: a refused key, such as RSA with a
    huge exponent, never costs a signature check), its signature verifies and its subject
    and extensions can be read."""
    csr_key(csr)
    try:
        valid = csr.is_signature_valid
    except Exception:  # unsupported signature algorithms raise rather than answer
        valid = False
    if not valid:
        raise InvalidInput("csr signature does not verify", "csr")
    try:  # parsed lazily by cryptography: read them now, while errors are still ours
        _ = csr.subject.rfc4514_string(), list(csr.extensions)
    except (ValueError, x509.DuplicateExtension) as exc:
        raise InvalidInput(f"csr subject or extensions cannot be read: {exc}", "csr") from None
    return csr


def _alt_names(extensions: x509.Extensions) -> set[x509.GeneralName]:
    try:
        return set(extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return set()


def fingerprint(cert: x509.Certificate) -> bytes:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()


def _us(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


class CertificateService:
    def __init__(
        self,
        store: DeviceStore,
        ca: CertificateAuthority,
        *,
        lifetime: dt.timedelta = DEFAULT_LIFETIME,
        crl_url: str | None = None,
        external_cas: Sequence[x509.Certificate] = (),
        clock: Callable[[], int] = now_us,
        limits: IssuanceLimits | None = None,
    ) -> None:
        self.store = store
        self.ca = ca
        self.lifetime = lifetime
        self.crl_url = crl_url
        self.external_cas = list(external_cas)
        self.clock = clock
        self.limits = limits or IssuanceLimits()

    async def _device(self, caller: Caller, device_id: bytes) -> Device:
        return await reach.reachable_device(self.store, caller, device_id)

    async def admit(self, device: Device) -> None:
        """The device's cap and issuance bucket: every issuance passes here before any
        signature is checked (pki/admission.py)."""
        await self.limits.admit(self.store, device, self.clock())

    async def issue_from_csr(self, caller: Caller, device_id: bytes, csr_pem: str) -> Issued:
        device = await self._device(caller, device_id)
        await self.admit(device)
        csr = parse_csr(csr_pem)
        by = IssuedBy.api_key(caller)
        issued = await self.issue(device, csr_key(csr), by, caller.origin, Action.CERTIFICATE_ISSUE)
        return Issued(issued)

    async def issue_with_new_key(self, caller: Caller, device_id: bytes) -> Issued:
        device = await self._device(caller, device_id)
        await self.admit(device)
        key = ec.generate_private_key(ec.SECP256R1())
        issued = await self.issue(
            device, key.public_key(), IssuedBy.api_key(caller), caller.origin,
            Action.CERTIFICATE_ISSUE,
        )  # fmt: skip
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return Issued(issued, pem)

    async def register_external(self, caller: Caller, device_id: bytes, pem: str) -> Certificate:
        """Record a certificate issued by a configured client CA (not devreg's) to a device;
        from then on it authenticates as that device on the client-auth listener."""
        device = await self._device(caller, device_id)
        try:
            cert = x509.load_pem_x509_certificate(pem.encode("utf-8"))
            public_key = cert.public_key()
        except (ValueError, UnsupportedAlgorithm):  # not a certificate, or a key type unknown
            raise InvalidInput("pem is not a PEM-encoded X.509 certificate", "pem") from None
        # Its key is used in every TLS handshake of the device: the policy holds for it too.
        key = check_public_key(public_key, "pem")
        await self.admit(device)
        if not verify_client_certificate(cert, self.external_cas):
            raise InvalidInput(
                "the certificate is not a valid client certificate from a configured client CA"
                " (devreg serve --client-ca)",
                "pem",
            )
        by = IssuedBy.api_key(caller)
        record = self._record_of(
            device, cert, public_key_hash(key), cert.issuer.rfc4514_string(), by
        )
        await self.limits.take(device)
        await self._record(record, caller.origin, Action.CERTIFICATE_REGISTER)
        return record

    async def renew(
        self, caller: Caller, current: Certificate, csr: str | x509.CertificateSigningRequest
    ) -> Certificate:
        """Re-enrollment by the device itself (RFC 7030 section 4.2.2): the request's
        subject and subjectAltName must be identical to those of the certificate it renews;
        the key may be new or the same. Recorded as minted by `current`."""
        if current.issuer != ISSUER_DEVREG:
            raise InvalidInput(
                "only certificates issued by devreg are renewed here: renew this one with the"
                " CA that issued it",
                "csr",
            )
        device = _own_device(caller)
        await self.admit(device)
        csr = parse_csr(csr) if isinstance(csr, str) else check_csr(csr)
        key = csr_key(csr)
        held = x509.load_pem_x509_certificate(current.pem.encode())
        if csr.subject != held.subject:
            raise InvalidInput(
                f"csr subject must be {held.subject.rfc4514_string()!r}, as in the certificate"
                " being renewed (RFC 7030 section 4.2.2)",
                "csr",
            )
        try:
            requested = _alt_names(csr.extensions)
        except (ValueError, x509.DuplicateExtension) as exc:  # e.g. an extension twice
            raise InvalidInput(f"csr extensions cannot be read: {exc}", "csr") from None
        if requested != _alt_names(held.extensions):
            raise InvalidInput(
                "csr subjectAltName must be identical to the certificate being renewed"
                " (RFC 7030 section 4.2.2)",
                "csr",
            )
        return await self.issue(
            device, key, IssuedBy.certificate(current), caller.origin, Action.CERTIFICATE_RENEW
        )

    async def enroll(
        self, caller: Caller, csr: x509.CertificateSigningRequest, by: IssuedBy
    ) -> Certificate:
        """Initial enrollment (EST simpleenroll) by an already authenticated device: devreg
        names the certificate after the device, whatever subject the request asked for
        (RFC 7030 lets the CA decide)."""
        device = _own_device(caller)
        await self.admit(device)
        return await self.issue(
            device, csr_key(check_csr(csr)), by, caller.origin, Action.CERTIFICATE_ENROLL
        )

    async def certificates(self, caller: Caller, device_id: bytes) -> list[Certificate]:
        device = await self._device(caller, device_id)
        return await self.store.list_certificates(device.account_id, device.id)

    async def certificate_page(
        self, caller: Caller, device_id: bytes, *, limit: int, offset: int
    ) -> tuple[list[Certificate], int]:
        """A page of the device's certificates, oldest first, and how many it has."""
        check_page(limit, offset)
        device = await self._device(caller, device_id)
        page = await self.store.list_certificates(
            device.account_id, device.id, limit=limit, offset=offset
        )
        return page, await self.store.count_certificates(device.account_id, device.id)

    async def check_key_free(self, device: Device, public_key: PublicKey) -> None:
        """InvalidInput when another device holds this key (one key, one device)."""
        if await self.store.key_holders(public_key_hash(public_key)) - {device.id}:
            raise InvalidInput("this public key already belongs to another device", "csr")

    async def issue(
        self, device: Device, public_key: PublicKey, by: IssuedBy, origin: Origin, action: Action
    ) -> Certificate:
        """Sign and record a certificate for an admitted device and an accepted key."""
        await self.check_key_free(device, public_key)
        await self.limits.take(device)
        uuid = render_uuid(device.id)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "devreg"),
                x509.NameAttribute(NameOID.COMMON_NAME, uuid),
            ]
        )
        cert = self.ca.issue(
            public_key, subject, lifetime=self.lifetime, client=True,
            uris=(f"urn:uuid:{uuid}",), crl_url=self.crl_url,
        )  # fmt: skip
        record = self._record_of(device, cert, public_key_hash(public_key), ISSUER_DEVREG, by)
        await self._record(record, origin, action)
        return record

    def _record_of(
        self, device: Device, cert: x509.Certificate, key_hash: bytes, issuer: str, by: IssuedBy
    ) -> Certificate:
        return Certificate(
            id=new_id(),
            account_id=device.account_id,
            device_id=device.id,
            serial=format(cert.serial_number, "X"),
            fingerprint=fingerprint(cert),
            public_key_hash=key_hash,
            pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
            not_before=_us(cert.not_valid_before_utc),
            not_after=_us(cert.not_valid_after_utc),
            issuer=issuer,
            created_at=self.clock(),
            issued_by=by.label,
            parent_id=by.parent_id,
        )

    async def _record(self, record: Certificate, origin: Origin, action: Action) -> None:
        try:
            await self.store.insert_certificate(
                record, origin, action, max_active=self.limits.max_active
            )
        except OverLimit:  # another issuance took the last place meanwhile
            raise over_cap(self.limits.max_active) from None
        except ParentRevoked:  # the authenticating certificate was revoked meanwhile
            raise Forbidden("The client certificate has been revoked") from None
        except DuplicateValue as exc:
            if exc.field == "public_key":  # also when another device claimed it just now
                raise InvalidInput(
                    "this public key already belongs to another device", "csr"
                ) from None
            raise InvalidInput("this certificate is already registered", "pem") from None


def _own_device(caller: Caller) -> Device:
    """The device renewing or enrolling: the caller it authenticated as."""
    if caller.device is None:
        raise Forbidden("Only the device itself renews or enrolls its certificate")
    return caller.device
