"""Issuing device certificates: from a PKCS#10 request, or with a key made here and
returned once. The rules (key policy, one key per device) live here, apart from HTTP."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devreg.core.clock import now_us
from devreg.core.errors import InvalidInput, NotFound
from devreg.core.ids import new_id, render_uuid
from devreg.core.paging import check_page
from devreg.core.records import Caller, Certificate, Device
from devreg.core.store import DeviceStore, DuplicateValue
from devreg.pki.ca import CertificateAuthority
from devreg.pki.keys import PublicKey, check_public_key, public_key_hash
from devreg.pki.verify import verify_client_certificate

DEFAULT_LIFETIME = dt.timedelta(days=90)
MAX_CSR_BYTES = 64 * 1024
ISSUER_DEVREG = "devreg"


class Issued(msgspec.Struct, frozen=True):
    certificate: Certificate
    private_key_pem: str | None = None


def parse_csr(pem: str) -> x509.CertificateSigningRequest:
    """A PEM CSR whose signature verifies, or InvalidInput saying what is wrong."""
    if len(pem) > MAX_CSR_BYTES:
        raise InvalidInput("csr is too large", "csr")
    try:
        csr = x509.load_pem_x509_csr(pem.encode("utf-8"))
    except ValueError:
        raise InvalidInput("csr is not a PEM-encoded PKCS#10 certificate request", "csr") from None
    return check_csr(csr)


def check_csr(csr: x509.CertificateSigningRequest) -> x509.CertificateSigningRequest:
    """The request, if its signature verifies and its subject and extensions can be read."""
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
    ) -> None:
        self.store = store
        self.ca = ca
        self.lifetime = lifetime
        self.crl_url = crl_url
        self.external_cas = list(external_cas)
        self.clock = clock

    async def _device(self, caller: Caller, device_id: bytes) -> Device:
        device = await self.store.get_device(caller.account_id, caller.live_mode, device_id)
        if device is None:
            raise NotFound("No such device")
        return device

    async def issue_from_csr(self, caller: Caller, device_id: bytes, csr_pem: str) -> Issued:
        device = await self._device(caller, device_id)
        csr = parse_csr(csr_pem)
        return Issued(await self._issue(device, check_public_key(csr.public_key())))

    async def issue_with_new_key(self, caller: Caller, device_id: bytes) -> Issued:
        device = await self._device(caller, device_id)
        key = ec.generate_private_key(ec.SECP256R1())
        issued = await self._issue(device, key.public_key())
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
        except ValueError:
            raise InvalidInput("pem is not a PEM-encoded X.509 certificate", "pem") from None
        if not verify_client_certificate(cert, self.external_cas):
            raise InvalidInput(
                "the certificate is not a valid client certificate from a configured client CA"
                " (devreg serve --client-ca)",
                "pem",
            )
        key = check_public_key(cert.public_key())
        record = self._record_of(device, cert, public_key_hash(key), cert.issuer.rfc4514_string())
        await self._record(record)
        return record

    async def renew(
        self, device: Device, current: Certificate, csr: str | x509.CertificateSigningRequest
    ) -> Certificate:
        """Re-enrollment by the device itself (RFC 7030 section 4.2.2): the request's
        subject and subjectAltName must be identical to those of the certificate it renews;
        the key may be new or the same."""
        if current.issuer != ISSUER_DEVREG:
            raise InvalidInput(
                "only certificates issued by devreg are renewed here: renew this one with the"
                " CA that issued it",
                "csr",
            )
        csr = parse_csr(csr) if isinstance(csr, str) else check_csr(csr)
        key = check_public_key(csr.public_key())
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
        return await self._issue(device, key)

    async def enroll(self, device: Device, csr: x509.CertificateSigningRequest) -> Certificate:
        """Initial enrollment (EST simpleenroll): devreg names the certificate after the
        device, whatever subject the request asked for (RFC 7030 lets the CA decide)."""
        return await self._issue(device, check_public_key(check_csr(csr).public_key()))

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

    async def _issue(self, device: Device, public_key: PublicKey) -> Certificate:
        key_hash = public_key_hash(public_key)
        holders = await self.store.key_holders(key_hash) - {device.id}
        if holders:
            raise InvalidInput("this public key already belongs to another device", "csr")
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
        record = self._record_of(device, cert, key_hash, ISSUER_DEVREG)
        await self._record(record)
        return record

    def _record_of(
        self, device: Device, cert: x509.Certificate, key_hash: bytes, issuer: str
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
        )

    async def _record(self, record: Certificate) -> None:
        try:
            await self.store.insert_certificate(record)
        except DuplicateValue as exc:
            if exc.field == "public_key":  # also when another device claimed it just now
                raise InvalidInput(
                    "this public key already belongs to another device", "csr"
                ) from None
            raise InvalidInput("this certificate is already registered", "pem") from None
