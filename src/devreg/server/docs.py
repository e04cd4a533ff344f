"""The API docs page: Swagger UI from files vendored in the package (no CDN)."""

from __future__ import annotations

from importlib import resources

from devreg.web.errors import HttpError
from devreg.web.response import Response

_STATIC = resources.files("devreg.docs") / "static"
_TYPES = {".js": b"text/javascript; charset=utf-8", ".css": b"text/css; charset=utf-8"}
_CACHE = [(b"cache-control", b"public, max-age=86400")]

DOCS_HTML = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>devreg API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/static/init.js"></script></body></html>
"""
INIT_JS = b'window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});\n'


def docs_page() -> Response:
    return Response(200, DOCS_HTML, b"text/html; charset=utf-8")


def static_file(name: str) -> Response:
    if name == "init.js":
        return Response(200, INIT_JS, _TYPES[".js"], list(_CACHE))
    suffix = name[name.rfind(".") :] if "." in name else ""
    if "/" in name or suffix not in _TYPES:
        raise HttpError(404, "not_found", "No such file")
    entry = _STATIC / name
    if not entry.is_file():
        raise HttpError(404, "not_found", "No such file")
    return Response(200, entry.read_bytes(), _TYPES[suffix], list(_CACHE))
