"""HTML plumbing shared by the console and the status page: escaping, layout, security headers.

Pages are rendered on the server from plain f-strings with every value escaped by `h()`; the
only scripts are files under `ops/static/`, allowed by a Content-Security-Policy that forbids
inline script and style.
"""

from __future__ import annotations

import html
import time
from importlib import resources
from typing import Any

from rempart.httpserver import HTTPError, Request, Response

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def h(value: Any) -> str:
    return html.escape(str(value), quote=True)


def when(ts: float | None, seconds: bool = True) -> str:
    """UTC time as `2026-11-23 14:05:09Z` (empty for none)."""
    if not ts:
        return ""
    fmt = "%Y-%m-%d %H:%M:%SZ" if seconds else "%Y-%m-%d %H:%MZ"
    try:
        return time.strftime(fmt, time.gmtime(ts))
    except (OverflowError, OSError, ValueError):  # a stored time no calendar can show
        return "far future" if ts > 0 else "far past"


def page(
    title: str,
    body: str,
    *,
    css: tuple[str, ...] = ("console.css",),
    js: tuple[str, ...] = (),
    meta: str = "",
    body_class: str = "",
) -> str:
    links = "".join(f'<link rel="stylesheet" href="/ops/static/{h(c)}">' for c in css)
    scripts = "".join(f'<script src="/ops/static/{h(s)}" defer></script>' for s in js)
    cls = f' class="{h(body_class)}"' if body_class else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{h(title)}</title><link rel="icon" href="data:,">{meta}{links}{scripts}</head>'
        f"<body{cls}>{body}</body></html>"
    )


def html_response(text: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status,
        text.encode("utf-8"),
        "text/html; charset=utf-8",
        {**SECURITY_HEADERS, **(headers or {})},
    )


def redirect(location: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        303, b"", "text/plain", {**SECURITY_HEADERS, "Location": location, **(headers or {})}
    )


def static_file(request: Request) -> Response:
    """GET /ops/static/<name>: only plain file names shipped in the package."""
    name = request.params.get("rest", "")
    suffix = name[name.rfind(".") :] if "." in name else ""
    if "/" in name or name.startswith(".") or suffix not in STATIC_TYPES:
        raise HTTPError(404, "no such static file")
    try:
        data = resources.files("rempart.ops").joinpath("static", name).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise HTTPError(404, "no such static file") from None
    return Response(
        200,
        data,
        STATIC_TYPES[suffix],
        {"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"},
    )


def form_of(request: Request) -> dict[str, str]:
    ctype = request.headers.get("content-type", "")
    if ctype and not ctype.startswith("application/x-www-form-urlencoded"):
        raise HTTPError(415, "send an HTML form (application/x-www-form-urlencoded)")
    return request.form()
