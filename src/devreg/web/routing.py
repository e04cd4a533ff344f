"""Path routing: literal segments and `{name}` captures, one handler per method. HEAD is
served wherever GET is (RFC 9110 9.3.2: the GET handler's status and headers, no body)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from devreg.web.request import Request
from devreg.web.response import Response

Handler = Callable[[Request], Awaitable[Response]]
ErrorRenderer = Callable[[Exception], Response]


class Route:
    __slots__ = ("handlers", "render_error", "segments")

    def __init__(self, path: str, render_error: ErrorRenderer) -> None:
        self.segments = tuple(path.strip("/").split("/")) if path != "/" else ("",)
        self.handlers: dict[str, Handler] = {}
        self.render_error = render_error

    def handler_for(self, method: str) -> Handler | None:
        handler = self.handlers.get(method)
        if handler is None and method == "HEAD":
            return self.handlers.get("GET")
        return handler

    def allowed(self) -> list[str]:
        """The methods this path answers, for a 405's Allow header."""
        return [*self.handlers, "HEAD"] if "GET" in self.handlers else list(self.handlers)

    def match(self, parts: tuple[str, ...]) -> dict[str, str] | None:
        if len(parts) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for pattern, part in zip(self.segments, parts, strict=True):
            if _is_capture(pattern):
                if not part:
                    return None
                params[pattern[1:-1]] = part
            elif pattern != part:
                return None
        return params


def _is_capture(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")


class Router:
    """Routes are tried in the order they were added; only those that can match are tried:
    the ones with as many segments as the path and its first segment (or a capture there),
    so a request costs a few comparisons, not one per route."""

    def __init__(self) -> None:
        self._routes: list[Route] = []
        self._by_path: dict[str, Route] = {}
        self._candidates: dict[tuple[int, str], list[Route]] = {}
        self._open_first: dict[int, list[Route]] = {}  # first segment is a capture

    def add(self, method: str, path: str, handler: Handler, render_error: ErrorRenderer) -> None:
        route = self._by_path.get(path)
        if route is None:
            route = self._by_path[path] = Route(path, render_error)
            self._routes.append(route)
            self._index()
        route.handlers[method] = handler

    def _index(self) -> None:
        self._candidates, self._open_first = {}, {}
        for route in self._routes:
            count, first = len(route.segments), route.segments[0]
            if _is_capture(first):
                self._open_first.setdefault(count, []).append(route)
                for (n, _), routes in self._candidates.items():
                    if n == count:
                        routes.append(route)
            else:
                key = (count, first)
                if key not in self._candidates:
                    self._candidates[key] = list(self._open_first.get(count, []))
                self._candidates[key].append(route)

    def endpoints(self) -> list[tuple[str, str]]:
        """Every (method, path template) a handler was added for, in that order (HEAD,
        served by each GET handler, is not listed apart)."""
        return [
            (method, path) for path, route in self._by_path.items() for method in route.handlers
        ]

    def match(self, path: str) -> tuple[Route, dict[str, str]] | None:
        parts = tuple(path.strip("/").split("/")) if path != "/" else ("",)
        candidates = self._candidates.get((len(parts), parts[0]))
        if candidates is None:
            candidates = self._open_first.get(len(parts), [])
        for route in candidates:
            params = route.match(parts)
            if params is not None:
                return route, params
        return None
