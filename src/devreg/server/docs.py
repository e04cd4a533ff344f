"""The API docs page: Swagger UI from files vendored in the package (no CDN).

The assets are read once, when the process starts, and answered from memory with a strong
`ETag` and `Cache-Control: public`: a browser that has them asks with `If-None-Match` and
gets a 304 without the 1.7 MB bundle. The page and its assets carry a Content-Security-
Policy that allows only this origin's scripts (no inline script, no other origin) and
forbids framing.
"""

from __future__ import annotations

import hashlib
from importlib import resources

from devreg.web.errors import HttpError
from devreg.web.request import Request
from devreg.web.response import Response

STATIC_MAX_AGE = 86400  # seconds a browser may use an asset before it revalidates
_TYPES = {".js": b"text/javascript; charset=utf-8", ".css": b"text/css; charset=utf-8"}

# Swagger UI needs its own scripts, its stylesheet (and the inline styles it sets), the
# data: images of that stylesheet, and fetches of /openapi.json and "Try it out" to this
# origin; nothing else. frame-ancestors and X-Frame-Options refuse framing (clickjacking).
CONTENT_SECURITY_POLICY = (
    b"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline';"
    b" img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none';"
    b" frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]

DOCS_HTML = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>devreg API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/static/init.js"></script></body></html>
"""
# validatorUrl: null, or Swagger UI would load a badge from validator.swagger.io.
INIT_JS = (
    b"window.ui = SwaggerUIBundle("
    b'{url: "/openapi.json", dom_id: "#swagger-ui", validatorUrl: null});\n'
)


class StaticAsset:
    __slots__ = ("body", "content_type", "etag")

    def __init__(self, body: bytes, content_type: bytes) -> None:
        self.body = body
        self.content_type = content_type
        self.etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'


def load_assets() -> dict[str, StaticAsset]:
    """Every script and stylesheet of the vendored Swagger UI, and init.js, in memory."""
    assets = {"init.js": StaticAsset(INIT_JS, _TYPES[".js"])}
    for entry in (resources.files("devreg.docs") / "static").iterdir():
        suffix = entry.name[entry.name.rfind(".") :] if "." in entry.name else ""
        if entry.is_file() and suffix in _TYPES:
            assets[entry.name] = StaticAsset(entry.read_bytes(), _TYPES[suffix])
    return assets


def docs_page() -> Response:
    return Response(200, DOCS_HTML, b"text/html; charset=utf-8", list(SECURITY_HEADERS))


def etag_matches(if_none_match: str | None, etag: bytes) -> bool:
    """RFC 9110 13.1.2: `*`, or any listed tag equal to ours by weak comparison."""
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    ours = etag.decode()
    return any(tag.strip().removeprefix("W/") == ours for tag in if_none_match.split(","))


def static_file(assets: dict[str, StaticAsset], name: str, request: Request) -> Response:
    asset = assets.get(name)
    if asset is None:
        raise HttpError(404, "not_found", "No such file")
    headers = [
        (b"etag", asset.etag),
        (b"cache-control", f"public, max-age={STATIC_MAX_AGE}".encode()),
        *SECURITY_HEADERS,
    ]
    if etag_matches(request.header(b"if-none-match"), asset.etag):
        return Response(304, b"", asset.content_type, headers)
    return Response(200, asset.body, asset.content_type, headers)
