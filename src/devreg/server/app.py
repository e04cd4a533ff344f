"""The ASGI application: lifespan (open the store and the limiter), routing, access log."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from pathlib import Path

import msgspec

from devreg.auth.access_gate import AccessGate
from devreg.auth.crl_fetches import check_crl_fetch, make_crl_fetch_limiter
from devreg.auth.rate_limit import RateLimiter, make_rate_limiter
from devreg.auth.tokens import TokenSigner, load_or_create_signing_key
from devreg.changelog.retention import keep_pruning
from devreg.changelog.service import ChangeLogService
from devreg.core.devices import DeviceService
from devreg.core.errors import Unavailable
from devreg.core.quotas import Quotas
from devreg.core.store import DeviceStore
from devreg.dialect_d.errors import render_error as render_d_error
from devreg.dialect_d.routes import DialectD
from devreg.dialect_f.errors import render_error as render_f_error
from devreg.dialect_f.routes import DialectF
from devreg.est.routes import Est
from devreg.pki.admission import IssuanceLimits
from devreg.pki.ca import CertificateAuthority, load_or_create_ca
from devreg.pki.issuing import CertificateService
from devreg.pki.revocation import CrlPublisher
from devreg.server.access_log import TOO_MANY_REQUESTS, RefusalCounter
from devreg.server.config import Config, load_config
from devreg.server.docs import docs_page, load_assets, static_file
from devreg.server.openapi import build_openapi
from devreg.storage import open_store
from devreg.tls.context import load_trusted_cas
from devreg.web.errors import HttpError, method_not_allowed
from devreg.web.request import (
    MAX_QUERY_PARAMS,
    Receive,
    Request,
    Scope,
    Send,
    check_query_size,
)
from devreg.web.request_id import HEADER as REQUEST_ID
from devreg.web.request_id import request_id_of
from devreg.web.response import Response, json_response
from devreg.web.routing import ErrorRenderer, Router

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
access_log = logging.getLogger("devreg.access")
log = logging.getLogger("devreg")


class Services(msgspec.Struct):
    """What handlers depend on, made once per process at startup."""

    store: DeviceStore
    limiter: RateLimiter
    signer: TokenSigner
    ca: CertificateAuthority
    certificates: CertificateService
    crl: CrlPublisher
    issuance_bucket: RateLimiter
    max_enrollment_secrets: int
    crl_fetches: RateLimiter  # per client address
    quotas: Quotas
    log: ChangeLogService
    gate: AccessGate


async def open_services(config: Config) -> Services:
    store = await open_store(config.database_url, config.data_dir, durable=config.durable)
    limiter = make_rate_limiter(
        config.rate_limit,
        config.rate_burst,
        config.redis_url,
        fallback_local=config.redis_down == "local",
    )
    signer = TokenSigner(load_or_create_signing_key(Path(config.data_dir)))
    ca = load_or_create_ca(Path(config.data_dir))
    # Per device, shared through Redis like the request limits; far below those, and off
    # with them (DEVREG_RATE_LIMIT=0).
    issuance_bucket = make_rate_limiter(
        config.issuance_rate / 3600 if config.rate_limit > 0 else 0,
        config.issuance_burst,
        config.redis_url,
        fallback_local=config.redis_down == "local",
    )
    certificates = CertificateService(
        store,
        ca,
        lifetime=dt.timedelta(days=config.cert_lifetime_days),
        crl_url=config.base_url + "/crl.der",
        external_cas=load_trusted_cas(config.client_ca_files),
        limits=IssuanceLimits(config.max_active_certificates, issuance_bucket),
    )
    crl_fetches = make_crl_fetch_limiter(
        config.rate_limit, config.redis_url, fallback_local=config.redis_down == "local"
    )
    return Services(
        store=store, limiter=limiter, signer=signer, ca=ca, certificates=certificates,
        crl=CrlPublisher(store, ca), issuance_bucket=issuance_bucket,
        max_enrollment_secrets=config.max_enrollment_secrets,
        crl_fetches=crl_fetches,
        quotas=config.quotas, log=ChangeLogService(store, store), gate=AccessGate(store),
    )  # fmt: skip


def build_router(services: Services) -> Router:
    router = Router()
    devices = DeviceService(services.store, quotas=services.quotas)
    DialectD(
        services.store, devices, services.certificates, services.limiter, services.log,
        services.gate, max_enrollment_secrets=services.max_enrollment_secrets,
    ).mount(router)  # fmt: skip
    DialectF(services.store, devices, services.signer, services.limiter, services.gate).mount(
        router
    )
    Est(
        services.store, services.ca, services.certificates, services.limiter, devices,
        services.gate,
    ).mount(router)  # fmt: skip
    spec = msgspec.json.encode(build_openapi())

    async def openapi(request: Request) -> Response:
        return Response(200, spec)

    async def healthz(request: Request) -> Response:
        try:
            await services.store.ping()
        except Unavailable:
            return json_response(503, {"status": "unavailable", "database": "unreachable"})
        if services.store.storage_full():
            # Reads are served, writes are not: a load balancer should send traffic elsewhere.
            return json_response(503, {"status": "degraded", "database": "storage_full"})
        return json_response(200, {"status": "ok"})

    async def docs(request: Request) -> Response:
        return docs_page()

    assets = load_assets()  # once per process: served from memory

    async def docs_static(request: Request) -> Response:
        return static_file(assets, request.path_params["name"], request)

    ca_pem = services.ca.pem

    async def ca_certificate(request: Request) -> Response:
        return Response(200, ca_pem, b"application/x-pem-file")

    async def crl_pem(request: Request) -> Response:
        await check_crl_fetch(services.crl_fetches, request.scope)
        return Response(200, (await services.crl.current()).pem, b"application/x-pem-file")

    async def crl_der(request: Request) -> Response:
        await check_crl_fetch(services.crl_fetches, request.scope)
        return Response(200, (await services.crl.current()).der, b"application/pkix-crl")

    router.add("GET", "/ca.pem", ca_certificate, render_f_error)
    router.add("GET", "/crl.pem", crl_pem, render_f_error)
    router.add("GET", "/crl.der", crl_der, render_f_error)
    router.add("GET", "/openapi.json", openapi, render_f_error)
    router.add("GET", "/healthz", healthz, render_f_error)
    router.add("GET", "/docs", docs, render_f_error)
    router.add("GET", "/docs/static/{name}", docs_static, render_f_error)
    return router


class DevregApp:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.services: Services | None = None
        self.router = Router()
        self.refusals = RefusalCounter(config.rate_limit_log_interval)
        self._pruning: asyncio.Task[None] | None = None
        self._access: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        self.services = await open_services(self.config)
        self.router = build_router(self.services)
        loop = asyncio.get_running_loop()
        self._access = loop.create_task(self.services.gate.run_refresher())
        if self.config.audit_retention_days > 0:
            self._pruning = loop.create_task(
                keep_pruning(self.services.log, self.config.audit_retention_days)
            )

    async def shutdown(self) -> None:
        for task in (self._pruning, self._access):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._pruning = self._access = None
        self.refusals.close()
        if self.services is not None:
            await self.services.gate.close()  # the last use of keys, before the store goes
            await self.services.limiter.close()
            await self.services.issuance_bucket.close()
            await self.services.crl_fetches.close()
            await self.services.store.close()
            self.services = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.handle(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.error("startup failed: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = Request(scope, receive)
        found = self.router.match(request.path)
        render = found[0].render_error if found else unmatched_renderer(request.path)
        try:
            query = scope.get("query_string")
            if query and query.count(b"&") >= MAX_QUERY_PARAMS:  # whether read or not
                check_query_size(query.count(b"&") + 1)
            if found is None:
                raise HttpError(404, "not_found", f"No such endpoint: {request.path[:200]}")
            route, request.path_params = found
            handler = route.handler_for(request.method)
            if handler is None:
                raise method_not_allowed(request.method, route.allowed())
            response = await handler(request)
        except Exception as exc:  # every failure is rendered in the route's dialect
            response = render(exc)
        response.headers = [*response.headers, (REQUEST_ID, request.request_id.encode())]
        await response.send(send, head=request.method == "HEAD")
        if self.config.access_log:
            if response.status == TOO_MANY_REQUESTS and self.refusals.counted(_host(scope)):
                return  # in its address's next summary line instead
            # The path only: query strings and headers may carry secrets or personal data.
            access_log.info(
                '%s "%s %s" %d %.1fms %s %s',
                _client(scope),
                request.method,
                _loggable(request.path[:200]),
                response.status,
                (time.perf_counter() - started) * 1000,
                request.credential or "-",
                request.request_id,
            )

    def refusal(self, client: str, method: str, path: str, error: HttpError) -> Response:
        """The answer to a request the server layer refused before it reached `handle` (head
        too large or too slow, unparsable), in the envelope of the dialect whose path it
        named, and its access log line."""
        found = self.router.match(path)
        render = found[0].render_error if found else unmatched_renderer(path)
        response = render(error)
        request_id = request_id_of(())  # its headers were not read, or not readable
        response.headers = [*response.headers, (REQUEST_ID, request_id.encode())]
        if self.config.access_log:
            host = client.rpartition(":")[0] or client  # "host:port"
            if response.status == TOO_MANY_REQUESTS and self.refusals.counted(host):
                return response
            access_log.info(
                '%s "%s %s" %d - - %s', client, _loggable(method[:16]), _loggable(path[:200]),
                response.status, request_id,
            )  # fmt: skip
        return response


# Control characters (a percent-encoded newline arrives decoded in the path) would let a
# client forge or split access-log lines: they are logged as escapes instead.
_LOG_ESCAPES = {
    code: f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}"
    for code in [*range(32), *range(127, 160), 0x2028, 0x2029]
}
_LOG_ESCAPES[ord('"')] = "\\x22"
_LOG_ESCAPES[ord("\\")] = "\\x5c"


def _loggable(text: str) -> str:
    return text.translate(_LOG_ESCAPES)


def unmatched_renderer(path: str) -> ErrorRenderer:
    """An unknown path is answered in the envelope of the dialect whose space it is in:
    all of `/iot/` is DigiCert's (its v1 paths too), the rest Flatpeak's."""
    return render_d_error if path == "/iot" or path.startswith("/iot/") else render_f_error


def _host(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "-"


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


def create_app(config: Config | None = None) -> DevregApp:
    return DevregApp(config or load_config())


def app_from_env() -> DevregApp:
    """Factory for `uvicorn --factory`: each worker reads the configuration from DEVREG_*.
    Worker processes start with a bare logging setup, so it is configured here too."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    return create_app(load_config())
