"""The router: first match in the order routes were added, whatever the index tries."""

from __future__ import annotations

from devreg.web.request import Request
from devreg.web.response import Response
from devreg.web.routing import Router


def _handler(name: str):  # type: ignore[no-untyped-def]
    async def handle(request: Request) -> Response:
        raise AssertionError(name)

    handle.__name__ = name
    return handle


def _render(exc: Exception) -> Response:
    raise exc


def _router(paths: list[str]) -> Router:
    router = Router()
    for path in paths:
        router.add("GET", path, _handler(path), _render)
    return router


def _matched(router: Router, path: str) -> tuple[str, dict[str, str]] | None:
    found = router.match(path)
    if found is None:
        return None
    route, params = found
    handler = route.handler_for("GET")
    assert handler is not None
    return handler.__name__, params


def test_first_added_wins_between_a_literal_and_a_capture() -> None:
    router = _router(["/devices/{id}", "/devices/history", "/{kind}/history", "/x/{y}/z"])
    assert _matched(router, "/devices/history") == ("/devices/{id}", {"id": "history"})
    assert _matched(router, "/things/history") == ("/{kind}/history", {"kind": "things"})
    router = _router(["/{kind}/history", "/devices/{id}"])
    assert _matched(router, "/devices/history") == ("/{kind}/history", {"kind": "devices"})
    assert _matched(router, "/devices/abc") == ("/devices/{id}", {"id": "abc"})


def test_segment_counts_and_misses() -> None:
    router = _router(["/", "/devices", "/devices/{id}", "/iot/api/v2/device/{id}/history",
                      "/a/{id}/b"])  # fmt: skip
    assert _matched(router, "/") == ("/", {})
    assert _matched(router, "/devices") == ("/devices", {})
    assert _matched(router, "/iot/api/v2/device/abc/history") == (
        "/iot/api/v2/device/{id}/history",
        {"id": "abc"},
    )
    assert _matched(router, "/devices/abc/more") is None
    assert _matched(router, "/nothing") is None
    assert _matched(router, "/a//b") is None  # an empty capture is no match
