"""EST (RFC 7030) under `/.well-known/est/`: cacerts, simpleenroll (a one-time secret with
HTTP Basic, on the EST listener, or an existing certificate) and simplereenroll (the current
certificate). Requests are base64 DER PKCS#10; answers are base64 PKCS#7 certs-only."""

from __future__ import annotations

from cryptography import x509

from devreg.auth.api_keys import parse_basic
from devreg.auth.rate_limit import RateLimiter
from devreg.core.access import AccountGate, Action, authenticate_device
from devreg.core.devices import DeviceService
from devreg.core.errors import Unauthenticated
from devreg.core.ids import parse_uuid
from devreg.core.records import Caller, Certificate
from devreg.core.store import DeviceStore
from devreg.est.enrollment import authenticate_secret, enroll_with_secret
from devreg.est.errors import render_error
from devreg.est.listener import EST_PREFIX, on_est_listener
from devreg.est.wire import PKCS7, PKCS7_CERTS_ONLY, PKCS10, certs_only, decode_csr
from devreg.pki.ca import CertificateAuthority
from devreg.pki.issuing import CertificateService, fingerprint
from devreg.pki.provenance import IssuedBy
from devreg.tls.client_cert import peer_certificate
from devreg.web.errors import HttpError
from devreg.web.request import Request
from devreg.web.response import Response
from devreg.web.routing import Router

MAX_REQUEST = 64 * 1024
BASE64 = [(b"content-transfer-encoding", b"base64")]


def require_tls(request: Request) -> None:
    """EST is served over TLS: on the EST listener, or with a client certificate (the
    client-auth listener, or a trusted proxy that terminated TLS)."""
    if not on_est_listener(request.scope) and peer_certificate(request.scope) is None:
        raise HttpError(404, "not_found", "EST is served over TLS on the EST port (--est-port)")


class Est:
    def __init__(
        self,
        store: DeviceStore,
        ca: CertificateAuthority,
        certificates: CertificateService,
        limiter: RateLimiter,
        devices: DeviceService,
        gate: AccountGate,
    ) -> None:
        self.gate = gate
        self.devices = devices
        self.store = store
        self.ca = ca
        self.certificates = certificates
        self.limiter = limiter

    def mount(self, router: Router) -> None:
        router.add("GET", EST_PREFIX + "cacerts", self.cacerts, render_error)
        router.add("POST", EST_PREFIX + "simpleenroll", self.simpleenroll, render_error)
        router.add("POST", EST_PREFIX + "simplereenroll", self.simplereenroll, render_error)

    async def cacerts(self, request: Request) -> Response:
        require_tls(request)
        return Response(200, certs_only([self.ca.certificate]), PKCS7, list(BASE64))

    async def simpleenroll(self, request: Request) -> Response:
        require_tls(request)
        # Who is asking and their rate limit come first, then the device's issuance limits,
        # and only then the request's signature: an unauthenticated request costs one
        # lookup, never a signature check.
        cert = peer_certificate(request.scope)
        if cert is not None:
            caller, current = await self.certificate_holder(request, cert, "renew")
            csr = await self.read_csr(request)
            issued = await self.certificates.enroll(caller, csr, IssuedBy.certificate(current))
        else:
            caller, secret = await self.secret_holder(request)
            csr = await self.read_csr(request)
            issued = await enroll_with_secret(self.store, self.certificates, caller, secret, csr)
        await self.devices.seen(caller)
        return self.answer(issued)

    async def simplereenroll(self, request: Request) -> Response:
        require_tls(request)
        cert = peer_certificate(request.scope)
        if cert is None:
            raise Unauthenticated("simplereenroll needs the certificate being renewed")
        caller, current = await self.certificate_holder(request, cert, "renew")
        csr = await self.read_csr(request)
        issued = await self.certificates.renew(caller, current, csr)
        await self.devices.seen(caller)
        return self.answer(issued)

    async def certificate_holder(
        self, request: Request, cert: x509.Certificate, action: Action
    ) -> tuple[Caller, Certificate]:
        digest = fingerprint(cert)
        request.credential = "cert:" + digest.hex()[:32]
        await self.limiter.check(request.credential)
        return await authenticate_device(
            self.store, self.gate, digest, None, action, request.request_id
        )

    async def secret_holder(self, request: Request) -> tuple[Caller, str]:
        """The device whose outstanding secret the request carries (not spent yet)."""
        if not on_est_listener(request.scope):
            raise Unauthenticated("Enrollment with a secret is served on the EST port")
        client = request.scope.get("client")
        await self.limiter.check("est:" + (client[0] if client else "-"))
        user, secret = parse_basic(request.credential_header(b"authorization"))
        device_id = parse_uuid(user)
        if device_id is None:
            raise Unauthenticated("The Basic user name must be the device's UUID")
        request.credential = "est-secret:" + user
        caller = await authenticate_secret(
            self.store, self.gate, device_id, secret, request.credential, request.request_id
        )
        return caller, secret

    async def read_csr(self, request: Request) -> x509.CertificateSigningRequest:
        content_type = (request.header(b"content-type") or "").split(";")[0].strip().lower()
        if content_type != PKCS10:
            raise HttpError(
                415, "unsupported_media_type", "Content-Type must be application/pkcs10"
            )
        return decode_csr(await request.body(MAX_REQUEST))

    def answer(self, issued: Certificate) -> Response:
        cert = x509.load_pem_x509_certificate(issued.pem.encode())
        return Response(200, certs_only([cert]), PKCS7_CERTS_ONLY, list(BASE64))
