"""`devreg` plus one test-only route, `GET /_test/tls`, answering what the request's ASGI TLS
extension holds, the certificate `peer_certificate` reads from it, the request's header
names and the serving process: run as `python -m tests.support.echo_devreg serve ...`.

The route is added at import time, so that worker processes (multiprocessing spawn imports
this main module in each of them) have it too.
"""

from __future__ import annotations

import os
import sys

from devreg.cli.main import main
from devreg.dialect_f.errors import render_error
from devreg.server import app as app_module
from devreg.tls.client_cert import peer_certificate
from devreg.web.request import Request
from devreg.web.response import Response, json_response
from devreg.web.routing import Router

ECHO_PATH = "/_test/tls"
_build_router = app_module.build_router


async def echo_tls(request: Request) -> Response:
    cert = peer_certificate(request.scope)
    return json_response(
        200,
        {
            "pid": os.getpid(),
            "tls": (request.scope.get("extensions") or {}).get("tls"),
            "subject": cert.subject.rfc4514_string() if cert else None,
            "serial": format(cert.serial_number, "x") if cert else None,
            "client": request.scope.get("client"),
            "headers": [name.decode("latin-1") for name, _ in request.scope["headers"]],
        },
    )


def build_router(services: app_module.Services) -> Router:
    router = _build_router(services)
    router.add("GET", ECHO_PATH, echo_tls, render_error)
    return router


app_module.build_router = build_router

if __name__ == "__main__":
    sys.exit(main())
