"""Dialect F handlers: read, validate, call the core, render. Nothing else."""

from __future__ import annotations

import msgspec

from devreg.auth.api_keys import authenticate_key, parse_basic
from devreg.auth.failures import guarded
from devreg.auth.rate_limit import RateLimiter
from devreg.auth.tokens import BearerTokens, TokenSigner, parse_bearer
from devreg.core.clock import now_us
from devreg.core.devices import DEFAULT_PAGE, MAX_PAGE, DeviceService
from devreg.core.errors import InvalidInput, NotFound
from devreg.core.ids import parse_prefixed
from devreg.core.records import Caller
from devreg.core.store import DeviceStore
from devreg.dialect_f.errors import UnsupportedVersion, render_error
from devreg.dialect_f.shapes import (
    API_VERSION,
    Accepted,
    DeviceCreate,
    DeviceList,
    DeviceUpdate,
    LoginOut,
    render_device,
)
from devreg.web.body import decode_body
from devreg.web.request import Request
from devreg.web.response import NO_STORE, Response, json_response
from devreg.web.routing import Router

LIST_PARAMS = frozenset({"limit", "starting_after", "ending_before", "reference_id"})


def check_version(request: Request) -> None:
    version = request.header(b"flatpeak-version")
    if version is not None and version != API_VERSION:
        raise UnsupportedVersion(version)


def device_id_of(request: Request) -> bytes:
    device_id = parse_prefixed("dev", request.path_params["id"])
    if device_id is None:
        raise NotFound("No such device: device ids look like dev_ followed by 32 hex digits")
    return device_id


def cursor_of(params: dict[str, str], name: str) -> bytes | None:
    text = params.get(name)
    if text is None:
        return None
    device_id = parse_prefixed("dev", text)
    if device_id is None:
        raise InvalidInput(f"{name} must be a device id (dev_ followed by 32 hex digits)", name)
    return device_id


def limit_of(params: dict[str, str]) -> int:
    text = params.get("limit")
    if text is None:
        return DEFAULT_PAGE
    # ASCII digits only: str.isdigit() also accepts "²" (superscript), which int() refuses, and
    # a bounded length keeps int() away from its 4300-digit limit.
    if not (text.isascii() and text.isdigit() and len(text) <= 10) or not (
        1 <= int(text) <= MAX_PAGE
    ):
        raise InvalidInput(f"limit must be an integer between 1 and {MAX_PAGE}", "limit")
    return int(text)


class DialectF:
    def __init__(
        self,
        store: DeviceStore,
        devices: DeviceService,
        signer: TokenSigner,
        limiter: RateLimiter,
    ) -> None:
        self.store = store
        self.devices = devices
        self.signer = signer
        self.tokens = BearerTokens(signer, store)
        self.limiter = limiter

    def mount(self, router: Router) -> None:
        router.add("GET", "/login", self.login, render_error)
        router.add("POST", "/devices", self.create_device, render_error)
        router.add("GET", "/devices", self.list_devices, render_error)
        router.add("GET", "/devices/{id}", self.get_device, render_error)
        router.add("PATCH", "/devices/{id}", self.update_device, render_error)
        router.add("DELETE", "/devices/{id}", self.delete_device, render_error)

    async def caller(self, request: Request) -> Caller:
        check_version(request)
        # BearerTokens.caller, in its two steps: no coroutine once the account is known.
        caller = self.signer.verify(parse_bearer(request.credential_header(b"authorization")))
        if self.tokens.unconfirmed(caller):
            await self.tokens.confirm(caller)
        request.credential = caller.credential_id
        await self.limiter.check(caller.credential_id)
        return caller

    async def login(self, request: Request) -> Response:
        check_version(request)
        user, secret = parse_basic(request.credential_header(b"authorization"))
        key = await guarded(
            self.limiter, request.scope, lambda: authenticate_key(self.store, user, secret)
        )
        request.credential = "key:" + key.id.hex()
        token = self.signer.issue(key, now_us() // 1_000_000)
        out = LoginOut(bearer_token=token, expires_in=self.signer.ttl, live_mode=key.live_mode)
        return json_response(200, out, [NO_STORE])

    async def create_device(self, request: Request) -> Response:
        caller = await self.caller(request)
        body = await decode_body(request, DeviceCreate)
        reference = None if isinstance(body.reference_id, msgspec.UnsetType) else body.reference_id
        device = await self.devices.create(caller, reference)
        return json_response(201, render_device(device))

    async def list_devices(self, request: Request) -> Response:
        caller = await self.caller(request)
        params = request.query()
        unknown = sorted(set(params) - LIST_PARAMS)
        if unknown:
            raise InvalidInput(f"Unknown query parameter {unknown[0]}", unknown[0])
        reference = params.get("reference_id")
        page = await self.devices.list_page(
            caller,
            limit=limit_of(params),
            reference_id=reference if reference else None,
            starting_after=cursor_of(params, "starting_after"),
            ending_before=cursor_of(params, "ending_before"),
        )
        data = [render_device(device) for device in page.devices]
        return json_response(
            200, DeviceList(object="list", url="/devices", has_more=page.has_more, data=data)
        )

    async def get_device(self, request: Request) -> Response:
        caller = await self.caller(request)
        device = await self.devices.get(caller, device_id_of(request))
        return json_response(200, render_device(device))

    async def update_device(self, request: Request) -> Response:
        caller = await self.caller(request)
        device_id = device_id_of(request)
        body = await decode_body(request, DeviceUpdate)
        changes: dict[str, object] = {}
        if not isinstance(body.reference_id, msgspec.UnsetType):
            changes["reference_id"] = body.reference_id
        device = await self.devices.update(caller, device_id, changes)
        return json_response(200, render_device(device))

    async def delete_device(self, request: Request) -> Response:
        caller = await self.caller(request)
        await self.devices.delete(caller, device_id_of(request))
        return json_response(202, Accepted(message="Accepted"))
