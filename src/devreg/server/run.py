"""`devreg serve`: migrations, the CA and the server certificate first (once, in this
process), then the sockets, then the listeners: here, or in N supervised worker processes."""

from __future__ import annotations

import asyncio
import logging
import os

from devreg.server.app import LOG_FORMAT
from devreg.server.config import Config, export_config
from devreg.server.listeners import Sockets, bind_sockets, run_worker
from devreg.server.supervisor import Supervisor
from devreg.storage import migrate_store
from devreg.tls.context import client_ca_paths, load_trusted_cas, mtls_context
from devreg.tls.server_cert import ensure_server_certificate

log = logging.getLogger("devreg")


def serve(config: Config) -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    applied = asyncio.run(migrate_store(config.database_url, config.data_dir))
    if applied:
        log.info("applied migrations %s", applied)
    cert_path, key_path = ensure_server_certificate(config.data_dir, config.tls_names)
    # A bad client CA file is an operator's error: said here, before anything listens.
    ca_paths = client_ca_paths(config.data_dir, config.client_ca_files)
    mtls_context(cert_path, key_path, ca_paths)
    load_trusted_cas(ca_paths)
    sockets = bind_sockets(config)
    log.info(
        "devreg on %s (%s, durability %s, %d worker%s)",
        _urls(config, sockets),
        config.database_label,
        config.durability,
        config.workers,
        "" if config.workers == 1 else "s",
    )
    if config.trusted_proxies:
        log.info(
            "client certificates forwarded by %s are accepted", ", ".join(config.trusted_proxies)
        )
    export_config(config, os.environ)  # what a process started from here would read
    if config.workers == 1:
        run_worker(config, sockets)
    else:
        # A worker gets its graceful-shutdown deadline, and a little more, before SIGKILL.
        stop_timeout = config.shutdown_timeout + 5
        Supervisor(run_worker, (config, sockets), config.workers, stop_timeout=stop_timeout).run()


def _urls(config: Config, sockets: Sockets) -> str:
    host = f"[{config.host}]" if ":" in config.host else config.host
    urls = f"http://{host}:{sockets.plain.getsockname()[1]}"
    if sockets.mtls is not None:
        urls += f", https://{host}:{sockets.mtls.getsockname()[1]} (client certificates)"
    if sockets.est is not None:
        urls += f", https://{host}:{sockets.est.getsockname()[1]}/.well-known/est (EST)"
    return urls
