"""The display page every peer serves on its signaling port (docs/api.md,
"Web peers"): a browser, a phone or a TV opens `http://<any device>:<port>/`
and joins the room as a web peer. One static bundle, built from
frontend-hook/display by scripts/build-display.sh and shipped with the
sidecar (and in the frozen build).

Only `GET /` (the page) and `GET /assets/<name>` (its scripts and styles)
are served, from this package's `static/display` folder; every other path
is 404. Every response carries SECURITY_HEADERS: the page runs only its own
scripts and styles, connects only to WebSockets (the room's devices), is
never framed by another site, and nothing it serves is sniffed as another
type.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parents[2] / "static" / "display"
_ASSET = re.compile(r"^/assets/([A-Za-z0-9_.-]{1,128})$")
_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self' ws:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
MISSING = (
    "<!doctype html><meta charset=utf-8><title>mobile-worship</title>"
    "<p>The display page is not built into this sidecar: run scripts/build-display.sh.</p>"
)


def page_response(status: int, text: str) -> web.Response:
    """A plain answer (404, 403) with the same headers as the page."""
    return web.Response(status=status, text=text, headers=SECURITY_HEADERS)


def static_response(request: web.BaseRequest) -> web.StreamResponse | None:
    """The page or one of its assets; None when the path is neither."""
    if request.method not in ("GET", "HEAD"):
        return None
    if request.path in ("/", "/index.html"):
        index = STATIC / "index.html"
        if not index.is_file():
            return web.Response(
                text=MISSING, content_type="text/html", status=503, headers=SECURITY_HEADERS
            )
        return web.FileResponse(index, headers={"Cache-Control": "no-cache", **SECURITY_HEADERS})
    m = _ASSET.match(request.path)
    if m is None or m[1].startswith("."):
        return None
    asset = STATIC / "assets" / m[1]
    if not asset.is_file():
        return None
    content_type = _TYPES.get(asset.suffix, "application/octet-stream")
    return web.FileResponse(
        asset,
        headers={
            "Content-Type": content_type,
            "Cache-Control": "max-age=31536000, immutable",
            **SECURITY_HEADERS,
        },
    )
