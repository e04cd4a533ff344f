"""Dialect D handlers: read, validate, call the core, render. The device endpoints take an
API key or, on the client-auth listener (or from a trusted proxy), the device's own
certificate."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial

import msgspec
from cryptography import x509

from devreg.auth.access_gate import AccessGate
from devreg.auth.api_keys import find_key
from devreg.auth.failures import guarded
from devreg.auth.rate_limit import RateLimiter
from devreg.changelog.export import entry_out
from devreg.changelog.service import ChangeLogService
from devreg.core.access import Action, DeviceFlags, authenticate_device
from devreg.core.api_keys import READ_METHODS, check_scope
from devreg.core.clock import now_us, render_rfc3339
from devreg.core.devices import DeviceService, FieldLabel
from devreg.core.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from devreg.core.ids import new_id, parse_uuid, render_uuid
from devreg.core.profiles import FieldSpec, Profile, ProfileFlags
from devreg.core.records import (
    Actor,
    ActorKind,
    Caller,
    Certificate,
    Device,
    DeviceProfile,
    DeviceStatus,
)
from devreg.core.store import DeviceStore
from devreg.dialect_d import params as query
from devreg.dialect_d.api_keys import ApiKeyRoutes
from devreg.dialect_d.errors import render_error
from devreg.dialect_d.history import DeviceRenderer, LogPageOut
from devreg.dialect_d.pages import TOTAL_EXACT_HEADER, ListBody, rendered
from devreg.dialect_d.shapes import (
    CertificateIn,
    DeviceIn,
    DeviceUpdateIn,
    DivisionIn,
    EnrollmentSecretOut,
    EnrollmentSecretsRevokedOut,
    FieldValueIn,
    FieldValueUpdateIn,
    ProfileIn,
    ProfileUpdateIn,
    RenewIn,
    RenewOut,
    RevokedCertificatesOut,
    RevokeIn,
    render_certificate,
    render_device,
    render_division,
    render_profile,
)
from devreg.est.enrollment import DEFAULT_MAX_OUTSTANDING_SECRETS, create_secret, revoke_secrets
from devreg.pki.issuing import CertificateService, Issued, fingerprint
from devreg.pki.revocation import revoke, revoke_device_certificates
from devreg.tls.client_cert import peer_certificate
from devreg.web.body import decode_body
from devreg.web.request import Request
from devreg.web.response import NO_STORE, Response, json_response
from devreg.web.routing import Router

BASE = "/iot/api/v2"


def field_labels(fields: list[FieldValueUpdateIn]) -> list[FieldLabel]:
    """The names and flags a client sent back beside its values (ids checked before)."""
    return [
        FieldLabel(
            field_id=parse_uuid(field.id) or b"",
            name=None if isinstance(field.name, msgspec.UnsetType) else field.name,
            mandatory=None if isinstance(field.mandatory, msgspec.UnsetType) else field.mandatory,
        )
        for field in fields
    ]


def field_values(fields: Sequence[FieldValueIn | FieldValueUpdateIn]) -> list[tuple[bytes, str]]:
    given = []
    for index, field in enumerate(fields):
        field_id = parse_uuid(field.id)
        if field_id is None:
            raise InvalidInput(f"fields[{index}].id must be a UUID", "fields")
        given.append((field_id, field.value))
    return given


@contextmanager
def certificate_named(text: str) -> Iterator[None]:
    try:
        yield
    except NotFound:
        raise NotFound(f"Certificate with id {text[:64]} does not exist") from None


@contextmanager
def device_named(text: str) -> Iterator[None]:
    """Seed 003's words for an unknown device."""
    try:
        yield
    except NotFound:
        raise NotFound(f"Device with id {text[:64]} does not exist") from None


INVALID_KEY = "Invalid API key"


class DialectD:
    def __init__(
        self,
        store: DeviceStore,
        devices: DeviceService,
        certificates: CertificateService,
        limiter: RateLimiter,
        log: ChangeLogService,
        gate: AccessGate,
        *,
        max_enrollment_secrets: int = DEFAULT_MAX_OUTSTANDING_SECRETS,
    ) -> None:
        self.max_enrollment_secrets = max_enrollment_secrets
        self.gate = gate
        self.store = store
        self.devices = devices
        self.profiles = devices.profiles
        self.certificates = certificates
        self.limiter = limiter
        self.log = log

    def mount(self, router: Router) -> None:
        routes = [
            ("POST", "/division", self.create_division),
            ("GET", "/division", self.list_divisions),
            ("GET", "/division/{id}", self.get_division),
            ("POST", "/device-profile", self.create_profile),
            ("GET", "/device-profile", self.list_profiles),
            ("GET", "/device-profile/{id}", self.get_profile),
            ("PUT", "/device-profile/{id}", self.update_profile),
            ("POST", "/device", self.create_device),
            ("GET", "/device", self.list_devices),
            ("GET", "/device/{id}", self.get_device),
            ("GET", "/device/{id}/history", self.device_history),
            ("GET", "/audit-log", self.audit_log),
            ("PUT", "/device/{id}", self.update_device),
            ("DELETE", "/device/{id}", self.delete_device),
            ("PUT", "/device/{id}/disable", self.disable_device),
            ("PUT", "/device/{id}/enable", self.enable_device),
            ("PUT", "/device/{id}/restore", self.restore_device),
            ("POST", "/device/{id}/certificate", self.issue_certificate),
            ("GET", "/device/{id}/certificate", self.list_certificates),
            ("PUT", "/device/{id}/certificate/revoke", self.revoke_device_certificates),
            ("POST", "/device/{id}/renew", self.renew_certificate),
            ("POST", "/device/{id}/enrollment-secret", self.create_enrollment_secret),
            ("PUT", "/device/{id}/enrollment-secret/revoke", self.revoke_enrollment_secrets),
            ("PUT", "/certificate/{id}/revoke", self.revoke_certificate),
            *ApiKeyRoutes(self.store, self.api_caller).routes(),
        ]
        for method, path, handler in routes:
            router.add(method, BASE + path, handler, render_error)

    # --- who is calling

    async def api_caller(self, request: Request) -> Caller:
        secret = request.credential_header(b"x-api-key")
        if not secret:
            raise Unauthenticated("Missing x-api-key header")
        # One statement per request (the key, its account, now): always current, no wait.
        key = await guarded(
            self.limiter, request.scope, lambda: find_key(self.store, secret, INVALID_KEY)
        )
        caller = Caller(
            account_id=key.account_id, live_mode=key.live_mode,
            credential_id="key:" + key.id.hex(),
            actor=Actor(ActorKind.API_KEY, render_uuid(key.id)), request_id=request.request_id,
            key_id=key.id, scope=key.scope, divisions=key.divisions,
        )  # fmt: skip
        request.credential = caller.credential_id
        check_scope(key.scope, request.method)
        if request.method not in READ_METHODS:  # a body may come: checked again after it
            request.after_body = partial(self.gate.token_key, caller, request.method, INVALID_KEY)
        self.gate.used(key, now_us())
        await self.limiter.check(caller.credential_id)
        return caller

    async def device_caller(
        self, request: Request, cert: x509.Certificate, action: Action
    ) -> tuple[Caller, Certificate]:
        """The device that owns `cert`, if it may do `action` on the device in the path."""
        digest = fingerprint(cert)
        request.credential = "cert:" + digest.hex()[:32]
        await self.limiter.check(request.credential)
        path_id = parse_uuid(request.path_params["id"]) or b""
        return await authenticate_device(
            self.store, self.gate, digest, path_id, action, request.request_id
        )

    def device_id(self, request: Request) -> bytes:
        text = request.path_params["id"]
        device_id = parse_uuid(text)
        if device_id is None:
            raise NotFound(f"Device with id {text[:64]} does not exist")
        return device_id

    async def render_one(self, caller: Caller, device: Device, status: int = 200) -> Response:
        (view,) = await self.devices.views(caller, [device])
        return json_response(status, render_device(view))

    # --- divisions and profiles

    async def create_division(self, request: Request) -> Response:
        caller = await self.api_caller(request)
        body = await decode_body(request, DivisionIn)
        division = await self.profiles.create_division(caller, body.name)
        return json_response(201, render_division(division))

    async def list_divisions(self, request: Request) -> Response:
        caller = await self.api_caller(request)
        limit, offset = query.page_params(request.query())
        divisions, total = await self.profiles.division_page(caller, limit=limit, offset=offset)
        body = ListBody()
        await body.fill(divisions, lambda batch: rendered(batch, render_division))
        return body.response(limit, offset, total)

    async def get_division(self, request: Request) -> Response:
        caller = await self.api_caller(request)
        division_id = query.uuid_param(request.path_params["id"], "division id")
        return json_response(
            200, render_division(await self.profiles.division(caller, division_id))
        )

    async def create_profile(self, request: Request) -> Response:
        caller = await self.api_caller(request)
        body = await decode_body(request, ProfileIn)
        division_id = (
            None if isinstance(body.division_id, msgspec.UnsetType)
            else query.uuid_param(body.division_id, "division_id")
        )  # fmt: skip
        profile = await self.profiles.create_profile(
            caller,
            body.name,
            division_id,
            [FieldSpec(name=f.name, mandatory=f.mandatory) for f in body.fields],
            ProfileFlags(
                allow_read=body.device_api_allow_read,
                allow_write=body.device_api_allow_write,
                allow_renew=body.device_api_allow_renew_certificate,
            ),
        )
        return json_response(201, render_profile(profile))

    async def list_profiles(self, request: Request) -> Response:
        caller = await self.api_caller(request)
        limit, offset = query.page_params(request.query())
        profiles, total = await self.profiles.profile_page(caller, limit=limit, offset=offset)

        async def render(batch: Sequence[DeviceProfile]) -> list[msgspec.Struct]:
            return [render_profile(p) for p in await self.profiles.complete(batch)]

        body = ListBody()
        await body.fill(profiles, render)
        return body.response(limit, offset, total)

    async def get_profile(self, request: Request) -> Response:
        caller = await self.api_caller(request)
        profile_id = query.uuid_param(request.path_params["id"], "device profile id")
        return json_response(200, render_profile(await self.profiles.profile(caller, profile_id)))

    async def update_profile(self, request: Request) -> Response:
        caller = await self.api_caller(request)
        profile_id = query.uuid_param(request.path_params["id"], "device profile id")
        body = await decode_body(request, ProfileUpdateIn)
        fields = None
        if not isinstance(body.fields, msgspec.UnsetType):
            fields = [
                FieldSpec(
                    name=f.name,
                    mandatory=f.mandatory,
                    id=None
                    if isinstance(f.id, msgspec.UnsetType)
                    else query.uuid_param(f.id, f"fields[{n}].id"),
                )
                for n, f in enumerate(body.fields)
            ]
        flags = DeviceFlags(
            allow_read=body.device_api_allow_read,
            allow_write=body.device_api_allow_write,
            allow_renew=body.device_api_allow_renew_certificate,
        )
        profile = await self.profiles.update_profile(
            caller,
            profile_id,
            None if isinstance(body.name, msgspec.UnsetType) else body.name,
            fields,
            flags,
        )
        return json_response(200, render_profile(profile))

    # --- devices

    async def create_device(self, request: Request) -> Response:
        caller = await self.api_caller(request)
        body = await decode_body(request, DeviceIn)
        division_id = (
            None if isinstance(body.division_id, msgspec.UnsetType)
            else query.uuid_param(body.division_id, "division_id")
        )  # fmt: skip
        profile_id = (
            None if isinstance(body.device_profile_id, msgspec.UnsetType)
            else query.uuid_param(body.device_profile_id, "device_profile_id")
        )  # fmt: skip
        device = await self.devices.create_in_profile(
            caller, body.device_identifier, division_id, profile_id, field_values(body.fields)
        )
        return await self.render_one(caller, device, 201)

    async def list_devices(self, request: Request) -> Response:
        caller = await self.api_caller(request)
        params = request.query()
        where = query.device_filter(params)
        limit, offset = query.page_params(params, query.LIST_PARAMS)
        page = await self.devices.query_page(caller, where, limit=limit, offset=offset)
        known: dict[bytes, Profile] = {}

        async def render(batch: Sequence[bytes]) -> list[msgspec.Struct]:
            # Devices and their values are read a batch at a time: only what fits is loaded.
            devices = await self.devices.devices_by_ids(caller, batch)
            return [render_device(v) for v in await self.devices.views(caller, devices, known)]

        body = ListBody()
        await body.fill(page.ids, render)
        headers = None if page.total_exact else [(TOTAL_EXACT_HEADER, b"false")]
        return body.response(limit, offset, page.total, headers)

    async def get_device(self, request: Request) -> Response:
        cert = peer_certificate(request.scope)
        if cert is not None:
            caller, _ = await self.device_caller(request, cert, "read")
            for name in request.query():  # `as_of` is an API key's: a device reads itself now
                raise InvalidInput(f"Unknown query parameter {name} for a device's own read", name)
            return await self.render_one(caller, await self.devices.seen(caller))
        caller = await self.api_caller(request)
        params = request.query()
        if params:
            return await self.device_as_of(request, caller, query.as_of_param(params))
        with device_named(request.path_params["id"]):
            device = await self.devices.get(caller, self.device_id(request))
        return await self.render_one(caller, device)

    # --- the change log

    async def device_as_of(self, request: Request, caller: Caller, time: int) -> Response:
        """The device as it was at `time` (also one deleted since): its record then, in
        the history's device shape (dialect D's, plus reference_id, live_mode, version)."""
        with device_named(request.path_params["id"]):
            record = await self.log.device_as_of(caller, self.device_id(request), time)
        renderer = DeviceRenderer(caller, self.profiles, self.log)
        return json_response(200, await renderer.state(record, time))

    async def device_history(self, request: Request) -> Response:
        caller = await self.api_caller(request)
        limit, offset = query.page_params(request.query())
        with device_named(request.path_params["id"]):
            seqs, total = await self.log.device_history(
                caller, self.device_id(request), limit=limit, offset=offset
            )
        renderer = DeviceRenderer(caller, self.profiles, self.log)

        async def render(batch: Sequence[int]) -> list[msgspec.Struct]:
            # Entries are read a batch at a time: only what fits is loaded.
            return [await renderer.history_record(e) for e in await self.log.entries(batch)]

        body = ListBody()  # at most 1 MiB: `limit` then says how many records it holds
        await body.fill(seqs, render)
        return body.response(limit, offset, total)

    async def audit_log(self, request: Request) -> Response:
        """The account's log (the key's mode, and what both modes share), oldest first
        from `after_seq`; `next_after_seq` continues it."""
        caller = await self.api_caller(request)
        where, after_seq, limit = query.log_params(request.query())
        seqs, next_after_seq = await self.log.account_page(
            caller, where, after_seq=after_seq, limit=limit
        )

        async def render(batch: Sequence[int]) -> list[tuple[int, msgspec.Struct]]:
            # Pruned entries are missing: each record comes with the seq it shows.
            return [(entry.seq, entry_out(entry)) for entry in await self.log.entries(batch)]

        body = ListBody()  # at most 1 MiB: a full page ends at its last record, and goes on
        last_seq = await body.fill_keyed(seqs, render)
        if body.full:
            limit, next_after_seq = body.served(limit), last_seq
        out = LogPageOut(limit=limit, after_seq=after_seq, next_after_seq=next_after_seq,
                         records=[])  # fmt: skip
        return body.response_around(out)

    async def update_device(self, request: Request) -> Response:
        cert = peer_certificate(request.scope)
        if cert is not None:
            # The body first, the certificate after it: an update whose body was held back
            # across the certificate's revocation (or the device's disabling) must not land.
            await request.body()
            caller, _ = await self.device_caller(request, cert, "write")
        else:
            caller = await self.api_caller(request)
        body = await decode_body(request, DeviceUpdateIn)
        identifier = (
            None if isinstance(body.device_identifier, msgspec.UnsetType)
            else body.device_identifier
        )  # fmt: skip
        device_id = self.device_id(request)
        if not isinstance(body.id, msgspec.UnsetType) and parse_uuid(body.id) != device_id:
            raise InvalidInput("id must be the device's own id, the one in the path", "id")
        with device_named(request.path_params["id"]):
            view = await self.devices.replace(
                caller, device_id, identifier, field_values(body.fields),
                self.flags_of(body), field_labels(body.fields),
            )  # fmt: skip
        # Seed 003 documents 201 Created for this update.
        return json_response(201, render_device(view))

    @staticmethod
    def flags_of(body: DeviceUpdateIn) -> DeviceFlags:
        return DeviceFlags(
            allow_read=body.device_api_allow_read,
            allow_write=body.device_api_allow_write,
            allow_renew=body.device_api_allow_renew_certificate,
        )

    async def delete_device(self, request: Request) -> Response:
        """An archive (DigiCert's "Delete device"): 200 with the device, status DELETED."""
        caller = await self.api_caller(request)
        with device_named(request.path_params["id"]):
            device = await self.devices.delete(caller, self.device_id(request))
        return await self.render_one(caller, device)

    async def restore_device(self, request: Request) -> Response:
        caller = await self.api_caller(request)
        with device_named(request.path_params["id"]):
            device = await self.devices.restore(caller, self.device_id(request))
        return await self.render_one(caller, device)

    async def disable_device(self, request: Request) -> Response:
        return await self._set_status(request, DeviceStatus.DISABLED)

    async def enable_device(self, request: Request) -> Response:
        return await self._set_status(request, DeviceStatus.ACTIVE)

    async def _set_status(self, request: Request, status: DeviceStatus) -> Response:
        """DigiCert's "Disable device" page answers 200 with the device."""
        caller = await self.api_caller(request)
        with device_named(request.path_params["id"]):
            device = await self.devices.set_status(caller, self.device_id(request), status)
        return await self.render_one(caller, device)

    # --- certificates

    async def issue_certificate(self, request: Request) -> Response:
        caller = await self.api_caller(request)
        body = await decode_body(request, CertificateIn)
        given = [isinstance(body.csr, str), body.generate_key, isinstance(body.pem, str)]
        if sum(given) != 1:
            raise InvalidInput(
                'Send one of "csr" (PEM request), "generate_key": true, or "pem" (a certificate'
                " from a configured client CA)",
                "csr",
            )
        with device_named(request.path_params["id"]):
            device_id = self.device_id(request)
            if isinstance(body.csr, str):
                issued = await self.certificates.issue_from_csr(caller, device_id, body.csr)
            elif isinstance(body.pem, str):
                registered = await self.certificates.register_external(caller, device_id, body.pem)
                issued = Issued(registered)
            else:
                issued = await self.certificates.issue_with_new_key(caller, device_id)
        out = render_certificate(
            issued.certificate, now_us(),
            issued.private_key_pem if issued.private_key_pem else msgspec.UNSET,
        )  # fmt: skip
        return json_response(201, out, [NO_STORE] if issued.private_key_pem else None)

    async def list_certificates(self, request: Request) -> Response:
        caller = await self.api_caller(request)
        limit, offset = query.page_params(request.query())
        with device_named(request.path_params["id"]):
            certs, total = await self.certificates.certificate_page(
                caller, self.device_id(request), limit=limit, offset=offset
            )
        now = now_us()
        body = ListBody()
        await body.fill(certs, lambda batch: rendered(batch, lambda c: render_certificate(c, now)))
        return body.response(limit, offset, total)

    async def renew_certificate(self, request: Request) -> Response:
        """Seed 003's renewal, by the device itself over client authentication. The
        certificate it renews stays valid until it expires or is revoked."""
        cert = peer_certificate(request.scope)
        if cert is None:
            raise Forbidden("Renewal needs the device's own client certificate")
        caller, current = await self.device_caller(request, cert, "renew")
        body = await decode_body(request, RenewIn)
        renewed = await self.certificates.renew(caller, current, body.csr)
        await self.devices.seen(caller)
        out = RenewOut(
            certificate_request_id=render_uuid(new_id()),
            status="AUTO_APPROVED",
            result="SUCCESS",
            certificate_id=render_uuid(renewed.id),
            pem=renewed.pem,
        )
        return json_response(200, out)

    async def revoke_certificate(self, request: Request) -> Response:
        """For keyCompromise, what the certificate minted is revoked with it (pki)."""
        caller = await self.api_caller(request)
        cert_id = parse_uuid(request.path_params["id"])
        body = await decode_body(request, RevokeIn)
        if cert_id is None:
            raise NotFound(f"Certificate with id {request.path_params['id'][:64]} does not exist")
        with certificate_named(request.path_params["id"]):
            revoked = await revoke(self.store, caller, cert_id, body.reason, now_us())
        return json_response(200, render_certificate(revoked, now_us()))

    async def revoke_device_certificates(self, request: Request) -> Response:
        """Every unrevoked certificate of the device; answers those revoked now."""
        caller = await self.api_caller(request)
        body = await decode_body(request, RevokeIn)
        with device_named(request.path_params["id"]):
            revoked = await revoke_device_certificates(
                self.store, caller, self.device_id(request), body.reason, now_us()
            )
        now = now_us()
        records = [render_certificate(cert, now) for cert in revoked]
        return json_response(200, RevokedCertificatesOut(total=len(records), records=records))

    async def create_enrollment_secret(self, request: Request) -> Response:
        """A one-time secret for the device's EST simpleenroll, valid for a day; it replaces
        the device's outstanding one."""
        caller = await self.api_caller(request)
        with device_named(request.path_params["id"]):
            made = await create_secret(
                self.store, caller, self.device_id(request),
                max_outstanding=self.max_enrollment_secrets,
            )  # fmt: skip
        out = EnrollmentSecretOut(secret=made.secret, expires_at=render_rfc3339(made.expires_at))
        return json_response(201, out, [NO_STORE])

    async def revoke_enrollment_secrets(self, request: Request) -> Response:
        caller = await self.api_caller(request)
        with device_named(request.path_params["id"]):
            count = await revoke_secrets(self.store, caller, self.device_id(request))
        return json_response(200, EnrollmentSecretsRevokedOut(revoked=count))
