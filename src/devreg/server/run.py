"""`devreg serve`: migrations first (once, in this process), then uvicorn with N workers."""

from __future__ import annotations

import asyncio
import logging
import os

import uvicorn

from devreg.server.app import LOG_FORMAT
from devreg.server.config import Config, export_config
from devreg.storage import migrate_store


def serve(config: Config) -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    applied = asyncio.run(migrate_store(config.database_url, config.data_dir))
    log = logging.getLogger("devreg")
    if applied:
        log.info("applied migrations %s", applied)
    log.info(
        "devreg on http://%s:%d (%s, %d worker%s)",
        config.host,
        config.port,
        config.database_label,
        config.workers,
        "" if config.workers == 1 else "s",
    )
    export_config(config, os.environ)  # the workers rebuild the config from here
    uvicorn.run(
        "devreg.server.app:app_from_env",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers if config.workers > 1 else None,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,  # ours carries the credential id and never the query string
        server_header=False,
        log_config=None,
        timeout_keep_alive=30,
    )
