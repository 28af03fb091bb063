"""The dashboard's web server (aiohttp): one page, its state as JSON, and a stream of
that state (Server-Sent Events) that the page renders on every change.

Rules of this module:
- Read only: GET and HEAD of three paths; every other method on any path is 405
  (`Allow: GET, HEAD`), so nothing can change the cluster through the dashboard.
- Served on a loopback address unless the user named another one (`--address`); on
  loopback the Host header must name the loopback address or localhost with our
  port, so a web page elsewhere cannot read the cluster through DNS rebinding.
- The page is one static file shipped in the package. Every response forbids
  framing, sniffing and referrers; the page's own Content-Security-Policy allows only
  its inline script and style (by hash) and requests to this server.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import re
from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web

from galleon.cli.dashboard.watches import Store

PAGE_FILE = "dashboard.html"
KEEPALIVE_SECONDS = 15.0
"""A comment line on each stream this often, so proxies and browsers keep it open."""
PUSH_INTERVAL_SECONDS = 0.25
"""At most one state per stream this often: changes in between (a fleet's pods turning
Ready one by one) go out together, so a busy cluster costs the browser and the server
a bounded number of renders."""
READ_METHODS = ("GET", "HEAD")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def page_text() -> str:
    """The page, as shipped in the package (`static/dashboard.html`)."""
    return (
        resources.files("galleon.cli.dashboard")
        .joinpath("static", PAGE_FILE)
        .read_text(encoding="utf-8")
    )


def _hashes(page: str, tag: str) -> str:
    """CSP sources for the inline `<tag>` blocks of `page`.

    >>> _hashes("<style>a{}</style>", "style").startswith("'sha256-")
    True
    """
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)
    return " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'"
        for b in blocks
    )


def content_policy(page: str) -> str:
    """The page's Content-Security-Policy: its own inline script and style, requests
    to this server only, no forms, no frames, no plugins."""
    return (
        "default-src 'none'; "
        f"script-src {_hashes(page, 'script')}; "
        f"style-src {_hashes(page, 'style')}; "
        "connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def is_loopback(address: str) -> bool:
    """
    >>> [is_loopback(a) for a in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "10.0.0.1")]
    [True, True, True, False, False]
    """
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def allowed_hosts(address: str, port: int) -> frozenset[str] | None:
    """The Host headers a request may carry (None: any, for an address the user chose
    that is not loopback).

    >>> sorted(allowed_hosts("127.0.0.1", 3100))
    ['127.0.0.1:3100', '[::1]:3100', 'localhost:3100']
    """
    if not is_loopback(address):
        return None
    names = {"127.0.0.1", "localhost", "[::1]", f"[{address}]" if ":" in address else address}
    return frozenset(f"{name}:{port}" for name in names)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(store: Store, hosts: Callable[[], frozenset[str] | None]) -> web.Application:
    """The application: `/` (the page), `/api/state` (its document), `/api/stream`
    (the document on every change, as Server-Sent Events). `hosts()` gives the Host
    headers allowed once the port is known."""
    page = page_text()
    policy = content_policy(page)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method not in READ_METHODS:
            raise web.HTTPMethodNotAllowed(
                request.method,
                list(READ_METHODS),
                text="the galleon dashboard is read only\n",
                headers=SECURITY_HEADERS,
            )
        allowed = hosts()
        if allowed is not None and request.host not in allowed:
            raise web.HTTPForbidden(
                text="the galleon dashboard answers only on its own address\n",
                headers=SECURITY_HEADERS,
            )
        response = await handler(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    async def index(_: web.Request) -> web.StreamResponse:
        return web.Response(
            text=page,
            content_type="text/html",
            charset="utf-8",
            headers={"Content-Security-Policy": policy},
        )

    async def state(_: web.Request) -> web.StreamResponse:
        document = store.document()[1]
        return web.Response(text=document, content_type="application/json")

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
        )
        response.headers.update(SECURITY_HEADERS)
        await response.prepare(request)
        sent = -1
        try:
            while True:
                version, document = store.document()
                if version != sent:
                    await response.write(f"event: state\ndata: {document}\n\n".encode())
                    sent = version
                    await asyncio.sleep(PUSH_INTERVAL_SECONDS)
                elif not await store.wait_after(version, KEEPALIVE_SECONDS):
                    await response.write(b": keepalive\n\n")
        except (ConnectionResetError, ConnectionError):
            pass  # the browser went away
        return response

    app = web.Application(middlewares=[guard])
    app.router.add_get("/", index)
    app.router.add_get("/api/state", state)
    app.router.add_get("/api/stream", stream)
    return app
