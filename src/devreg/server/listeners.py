"""One uvicorn server per process for both listeners: the plain HTTP one and the
client-certificate (mTLS) one, on one app object whose lifespan runs once.

`DevregServer` is uvicorn's `Server` with a second listening socket: it starts the app's
lifespan and the plain listener as uvicorn does, then adds the mTLS listener (its own
uvicorn `Config`: the TLS context and the protocol that fills the ASGI TLS extension) to the
same event loop, connection set, signal handling and graceful shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from devreg.est.listener import EstListener
from devreg.server.app import LOG_FORMAT, create_app
from devreg.server.config import Config
from devreg.server.memory import return_large_buffers
from devreg.tls.context import client_ca_paths, load_trusted_cas, mtls_context
from devreg.tls.forwarded import ForwardedClientCert, parse_networks
from devreg.tls.protocol import MtlsHttpToolsProtocol
from devreg.tls.server_cert import SERVER_CERT_FILE, SERVER_KEY_FILE
from devreg.web.protocol import LimitedHttpToolsProtocol, Limits

log = logging.getLogger("devreg")

# What `uvicorn.run` was given before: uvloop, httptools, our own access log only.
UVICORN_SETTINGS: dict[str, Any] = {
    "loop": "uvloop",
    "access_log": False,  # ours carries the credential id and never the query string
    "server_header": False,
    "log_config": None,
    "timeout_keep_alive": 30,
}


@dataclass(frozen=True)
class Sockets:
    """The bound listening sockets, made once by the parent (picklable to workers)."""

    plain: socket.socket
    mtls: socket.socket | None
    est: socket.socket | None = None


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def bind_sockets(config: Config) -> Sockets:
    bound: list[socket.socket] = []
    try:
        for port in (config.port, config.mtls_port, config.est_port):
            bound.append(bind(config.host, port) if port else None)  # type: ignore[arg-type]
    except OSError:
        for sock in bound:
            if sock is not None:
                sock.close()
        raise
    return Sockets(bound[0], bound[1], bound[2])


class DevregServer(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        extra: Sequence[tuple[uvicorn.Config, socket.socket]] = (),
        parent_pid: int | None = None,
        tls_handshake_timeout: float = 10.0,
    ) -> None:
        super().__init__(config)
        self.extra = list(extra)
        self.parent_pid = parent_pid
        self.tls_handshake_timeout = tls_handshake_timeout

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)  # the lifespan, then the plain listener
        loop = asyncio.get_running_loop()
        for config, sock in self.extra:
            if not config.loaded:
                config.load()

            def make_protocol(
                _loop: asyncio.AbstractEventLoop | None = None, config: uvicorn.Config = config
            ) -> asyncio.Protocol:
                protocol: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
                    config=config,
                    server_state=self.server_state,  # one set of connections to drain
                    app_state=self.lifespan.state,
                    _loop=_loop,
                )
                return protocol

            # A client that stalls its handshake is dropped, and so is one that never
            # answers our close_notify (asyncio's defaults: 60 s and 30 s).
            timeout = self.tls_handshake_timeout if config.ssl else None
            server = await loop.create_server(
                make_protocol,
                sock=sock,
                ssl=config.ssl,
                backlog=config.backlog,
                ssl_handshake_timeout=timeout,
                ssl_shutdown_timeout=timeout,
            )
            self.servers.append(server)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn waits for every connection to close, bounded by the config's
        # timeout_graceful_shutdown (DEVREG_SHUTDOWN_TIMEOUT); past it, the requests still
        # running are cancelled, and the connections still open (a client not reading its
        # answer holds one open however long the drain deadline says) are dropped here.
        await super().shutdown(sockets=[*(sockets or []), *(sock for _, sock in self.extra)])
        left = list(self.server_state.connections)  # closing ones too: stuck on output
        for connection in left:
            connection.transport.abort()
        if left:
            log.warning("shutdown deadline passed: %d connections dropped", len(left))

    async def on_tick(self, counter: int) -> bool:
        # A worker whose supervisor is gone (killed) stops instead of serving on alone.
        if self.parent_pid is not None and counter % 10 == 0 and os.getppid() != self.parent_pid:
            self.should_exit = True
        return await super().on_tick(counter)


def build_server(config: Config, sockets: Sockets, parent_pid: int | None = None) -> DevregServer:
    # uvicorn's TRACE message log shows each request's query string, where a client may
    # have put a secret (the access log leaves it out): never logged, whatever the level.
    asgi_log = logging.getLogger("uvicorn.asgi")
    if asgi_log.getEffectiveLevel() < logging.DEBUG:
        asgi_log.setLevel(logging.DEBUG)
    app = create_app(config)  # one app object, one lifespan, for both listeners
    ca_paths = client_ca_paths(config.data_dir, config.client_ca_files)
    limits = Limits(
        head_timeout=config.head_timeout,
        body_timeout=config.body_timeout,
        max_connections=config.max_connections,
        max_per_address=config.max_connections_per_address,
        drain_timeout=config.drain_timeout,
        max_output_buffer=config.max_output_buffer,
        exempt_networks=tuple(parse_networks(config.trusted_proxies)),
    )
    plain = _plain_config(
        app, config, ca_paths, LimitedHttpToolsProtocol.configure(limits, app.refusal)
    )
    tls_protocol = MtlsHttpToolsProtocol.configure(limits, app.refusal)
    extra: list[tuple[uvicorn.Config, socket.socket]] = []
    if sockets.mtls is not None:
        context = mtls_context(
            config.data_dir / SERVER_CERT_FILE, config.data_dir / SERVER_KEY_FILE, ca_paths
        )
        mtls = uvicorn.Config(
            # The certificate comes from the TLS session only: forwarding headers are dropped.
            ForwardedClientCert(app, (), ()),
            http=tls_protocol,
            lifespan="off",  # the plain listener's config runs it, once per process
            proxy_headers=False,  # devices connect directly: X-Forwarded-For means nothing
            ssl_context_factory=lambda _config, _default: context,
            **UVICORN_SETTINGS,
        )
        extra.append((mtls, sockets.mtls))
    if sockets.est is not None:
        est_context = mtls_context(
            config.data_dir / SERVER_CERT_FILE,
            config.data_dir / SERVER_KEY_FILE,
            ca_paths,
            require_client_cert=False,
        )
        est = uvicorn.Config(
            EstListener(ForwardedClientCert(app, (), ())),
            http=tls_protocol,
            lifespan="off",
            proxy_headers=False,
            ssl_context_factory=lambda _config, _default: est_context,
            **UVICORN_SETTINGS,
        )
        extra.append((est, sockets.est))
    return DevregServer(plain, extra, parent_pid, config.tls_handshake_timeout)


def _plain_config(
    app: Any, config: Config, ca_paths: Sequence[Any], protocol: type[asyncio.Protocol]
) -> uvicorn.Config:
    # The plain listener's config is the server's: it holds the graceful-shutdown deadline.
    settings = {**UVICORN_SETTINGS, "timeout_graceful_shutdown": config.shutdown_timeout}
    if not config.trusted_proxies:
        # No trusted proxy: the TCP peer is the client (uvicorn would otherwise believe
        # X-Forwarded-For from any local process, e.g. to dodge the per-address login limit).
        return uvicorn.Config(app, http=protocol, lifespan="on", proxy_headers=False, **settings)
    # Proxy mode: the forwarded certificate is taken only from a trusted TCP peer, so our
    # wrapper runs before uvicorn's X-Forwarded-For handling rewrites scope["client"]; the
    # trusted proxies may also name the client for the access log.
    # Only the configured proxies may name the client (not uvicorn's default of localhost).
    networks = [str(network) for network in parse_networks(config.trusted_proxies)]
    chain = ForwardedClientCert(
        ProxyHeadersMiddleware(app, trusted_hosts=networks),
        config.trusted_proxies,
        load_trusted_cas(ca_paths),
    )
    return uvicorn.Config(chain, http=protocol, lifespan="on", proxy_headers=False, **settings)


def run_worker(config: Config, sockets: Sockets, parent_pid: int | None = None) -> None:
    """Serve both listeners in this process until told to stop (SIGTERM, SIGINT)."""
    if not logging.getLogger().handlers:  # a spawned worker starts with bare logging
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    raise_file_limit(config.max_connections)
    return_large_buffers()
    build_server(config, sockets, parent_pid).run(sockets=[sockets.plain])


def raise_file_limit(max_connections: int) -> None:
    """Room for `max_connections` sockets and the files besides them: the soft limit on open
    files is raised up to the hard one (a default soft limit of 1024 would otherwise make
    accept() fail, for everyone, before the connection limit is reached)."""
    wanted = max_connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < wanted:
            log.warning(
                "open files are limited to %d: fewer than DEVREG_MAX_CONNECTIONS=%d allows",
                new,
                max_connections,
            )
