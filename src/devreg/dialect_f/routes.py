"""Dialect F handlers: read, validate, call the core, render. Nothing else."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial

import msgspec

from devreg.auth.access_gate import AccessGate
from devreg.auth.api_keys import authenticate_key, parse_basic
from devreg.auth.failures import guarded
from devreg.auth.rate_limit import RateLimiter
from devreg.auth.tokens import TokenSigner, parse_bearer
from devreg.core.api_keys import READ_METHODS
from devreg.core.clock import now_us
from devreg.core.devices import DEFAULT_PAGE, MAX_PAGE, DeviceService
from devreg.core.errors import InvalidInput, NotFound
from devreg.core.ids import parse_prefixed
from devreg.core.records import Caller
from devreg.core.store import DeviceStore
from devreg.core.versions import DEFAULT_VERSION, SERVED, VersionRefused, version_for
from devreg.dialect_f.errors import render_error, render_failure
from devreg.dialect_f.shapes import (
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
from devreg.web.routing import Handler, Router

log = logging.getLogger("devreg")
LIST_PARAMS = frozenset({"limit", "starting_after", "ending_before", "reference_id"})
VERSION_HEADER = b"flatpeak-version"


class Exchange:
    """What an answer needs of its request whatever happens: the caller's mode (once a
    credential is verified) and the version the answer is in."""

    __slots__ = ("live_mode", "repeated", "requested", "version")

    def __init__(self, request: Request) -> None:
        self.live_mode = False
        # HTTP's optional whitespace is not part of the value; given twice, which one
        # counts would be up to each proxy on the way, so that is refused (in settle)
        asked = [v.decode("latin-1").strip(" \t") for k, v in request.scope["headers"]
                 if k == VERSION_HEADER]  # fmt: skip
        self.repeated = len(asked) > 1
        self.requested = asked[0] if asked else None
        self.version = DEFAULT_VERSION  # until the caller's account default is known

    def settle(self, default: str) -> None:
        """The version of this answer, once the caller's account default is known; refused
        (VersionRefused) if older than it, not served, or asked for twice. Auth is judged
        before this."""
        self.version = default
        if self.repeated:
            raise VersionRefused("The Flatpeak-Version header is given more than once")
        self.version = version_for(self.requested, default)


FHandler = Callable[[Request, Exchange], Awaitable[Response]]


def endpoint(context: str, handler: FHandler) -> Handler:
    """`handler` answering in the whole error object (the caller's mode, `context`), with
    the version used in a Flatpeak-Version header on every answer."""

    async def run(request: Request) -> Response:
        exchange = Exchange(request)
        try:
            response = await handler(request, exchange)
        except Exception as exc:
            response = render_failure(exc, context=context, live_mode=exchange.live_mode)
        response.headers = [*response.headers, (VERSION_HEADER, exchange.version.encode())]
        return response

    return run


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
        gate: AccessGate,
    ) -> None:
        self.store = store
        self.devices = devices
        self.signer = signer
        self.gate = gate
        self.limiter = limiter

    def mount(self, router: Router) -> None:
        # A path's renderer answers what fails before its handler runs (a wrong method, a
        # head the server refused): no credential was looked at, so live_mode false.
        for method, path, handler, context in (
            ("GET", "/login", self.login, "api.login"),
            ("POST", "/devices", self.create_device, "api.device_create"),
            ("GET", "/devices", self.list_devices, "api.device_list"),
            ("GET", "/devices/{id}", self.get_device, "api.device_get"),
            ("PATCH", "/devices/{id}", self.update_device, "api.device_update"),
            ("DELETE", "/devices/{id}", self.delete_device, "api.device_delete"),
        ):
            router.add(method, path, endpoint(context, handler), render_error)

    async def caller(self, request: Request, exchange: Exchange) -> Caller:
        caller = self.signer.verify(parse_bearer(request.credential_header(b"authorization")))
        exchange.live_mode = caller.live_mode
        request.credential = caller.credential_id
        # AccessGate.token_key in its two steps: no coroutine while the key's state is cached.
        assert caller.key_id is not None  # every token names its key
        standing = self.gate.cached_key(caller.key_id)
        if standing is None:
            standing = await self.gate.load_key(caller.key_id)
        key = self.gate.admit(caller, standing, request.method)
        if request.method not in READ_METHODS:  # a body may come: checked again after it
            request.after_body = partial(self.gate.token_key, caller, request.method)
        await self.limiter.check(caller.credential_id)
        exchange.settle(caller.api_version)  # carried in the token: no look-up
        # The verified token's caller is cached across requests; the request id is this
        # one's, and the scope the key has now.
        return msgspec.structs.replace(
            caller, request_id=request.request_id, scope=key.scope, divisions=key.divisions
        )

    async def login(self, request: Request, exchange: Exchange) -> Response:
        user, secret = parse_basic(request.credential_header(b"authorization"))
        key = await guarded(
            self.limiter, request.scope, lambda: authenticate_key(self.store, user, secret)
        )
        exchange.live_mode = key.live_mode
        request.credential = "key:" + key.id.hex()
        # Off the hot path: looked up once per login, then carried in the token.
        default = await self.store.account_api_version(key.account_id) or DEFAULT_VERSION
        if default not in SERVED:  # a row edited by hand, or a version no longer served
            log.warning("account %s: stored API version is not served", key.account_id.hex())
            default = DEFAULT_VERSION
        exchange.settle(default)
        now = now_us() // 1_000_000
        token = self.signer.issue(key, now, default)
        out = LoginOut(
            bearer_token=token, expires_in=self.signer.lifetime(key, now), live_mode=key.live_mode
        )
        return json_response(200, out, [NO_STORE])

    async def create_device(self, request: Request, exchange: Exchange) -> Response:
        caller = await self.caller(request, exchange)
        body = await decode_body(request, DeviceCreate)
        reference = None if isinstance(body.reference_id, msgspec.UnsetType) else body.reference_id
        device = await self.devices.create(caller, reference)
        return json_response(201, render_device(device))

    async def list_devices(self, request: Request, exchange: Exchange) -> Response:
        caller = await self.caller(request, exchange)
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

    async def get_device(self, request: Request, exchange: Exchange) -> Response:
        caller = await self.caller(request, exchange)
        device = await self.devices.get(caller, device_id_of(request))
        return json_response(200, render_device(device))

    async def update_device(self, request: Request, exchange: Exchange) -> Response:
        caller = await self.caller(request, exchange)
        device_id = device_id_of(request)
        body = await decode_body(request, DeviceUpdate)
        device = await self.devices.update(caller, device_id, body.reference_id)
        return json_response(200, render_device(device))

    async def delete_device(self, request: Request, exchange: Exchange) -> Response:
        caller = await self.caller(request, exchange)
        await self.devices.delete(caller, device_id_of(request))
        return json_response(202, Accepted(message="Accepted"))
