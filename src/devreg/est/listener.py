"""The EST listener's gate: only `/.well-known/est/` is served there, and requests are
marked as having arrived over that TLS listener (where HTTP Basic secrets may be sent)."""

from __future__ import annotations

from devreg.web.request import Receive, Scope, Send

EST_PREFIX = "/.well-known/est/"
LISTENER_KEY = "devreg.listener"


def on_est_listener(scope: Scope) -> bool:
    return scope.get(LISTENER_KEY) == "est"


class EstListener:
    def __init__(self, app: object) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if not scope["path"].startswith(EST_PREFIX):
                body = b"Only /.well-known/est/ is served on this port\n"
                await send(
                    {
                        "type": "http.response.start",
                        "status": 404,
                        "headers": [
                            (b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
            scope[LISTENER_KEY] = "est"
        await self.app(scope, receive, send)  # type: ignore[operator]
