"""The Kubernetes API client's HTTP transport: aiohttp under lightkube's httpx2 client.

lightkube builds requests, authenticates them (its httpx2 `Auth` flows: a bearer
token, a service account's token file re-read after a 401, an exec plugin) and reads
the answers; this transport only carries a request to the API server and its
response back. It replaces httpx2's default (httpcore2 over anyio's TLS streams),
under which a pod write cost 0.8-1.0 ms of CPU against 0.6-0.8 ms here, and which
was a third of the operator's event loop during a fleet's upgrade (docs/benchmarks.md,
"10,000 instances: the API client's transport, and pods observed once").

Rules of this module:
- Two aiohttp sessions per event loop, opened on the first request: one for watches
  (`?watch=true`), one for every other request. TLS is the context the kubeconfig
  gives (its CA, its client certificate): the same context lightkube would have
  given httpx2, built by lightkube's own `verify_cluster`.
- A watch holds its connection for as long as it runs, so watches have a pool of
  their own, without a limit: their number is the operator's own (two per
  namespace it serves, `galleon.controllers.scaleset.follow`), and one of them
  waiting for a connection would be a cache that stops following. Other requests
  share at most `MAX_CONNECTIONS` connections (a request beyond them waits for
  one, within httpx2's pool timeout); idle ones are kept `KEEPALIVE_SECONDS`. Each
  connection costs memory on both ends (asyncio's TLS buffer alone is 256 KiB).
- httpx2's timeouts hold: `connect` bounds the TCP and TLS connect, `pool` the wait
  for a free connection, `read` each read of the response (a watch has none).
  A write timeout has no aiohttp counterpart: the read timeout starts once the
  request is sent, so a stalled write ends with it.
- Nothing is added to or taken from the request: its headers are httpx2's (lightkube
  and the auth flow set them), no cookie is kept, no redirect followed, no body
  decompressed (httpx2 decodes the `Content-Encoding` it asked for), no proxy or
  environment variable consulted.
- aiohttp's errors surface as httpx2's (`ConnectError`, `ReadTimeout`, ...), so
  lightkube's watch loop and its callers see what they saw before.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx2
import yarl

MAX_CONNECTIONS = 100
KEEPALIVE_SECONDS = 15.0
_DROPPED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
"""Request headers aiohttp writes itself from the URL and the body."""
_NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
"""aiohttp's default headers, left out: httpx2 set its own."""


def _error(error: BaseException, request: httpx2.Request) -> httpx2.TransportError:
    """The httpx2 error that stands for an aiohttp (or asyncio) error."""
    message = str(error) or type(error).__name__
    kind: type[httpx2.TransportError]
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        kind = httpx2.ConnectTimeout
    elif isinstance(error, aiohttp.SocketTimeoutError | TimeoutError):
        kind = httpx2.ReadTimeout
    elif isinstance(error, aiohttp.ClientConnectorError):
        kind = httpx2.ConnectError
    elif isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        kind = httpx2.RemoteProtocolError
    elif isinstance(error, aiohttp.ClientResponseError):
        kind = httpx2.RemoteProtocolError  # a malformed response (aiohttp's parser refused it)
    else:
        kind = httpx2.ReadError
    return kind(message, request=request)


class _Body(httpx2.AsyncByteStream):
    """A response's body as aiohttp reads it; the connection goes back to the pool
    once the body is read, and is closed when the body is let go before its end."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx2.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._response.content.iter_any():
                yield part
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _error(error, self._request) from error

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


def is_watch(url: httpx2.URL) -> bool:
    """Whether a request is a watch (lightkube asks `?watch=true`).

    >>> is_watch(httpx2.URL("https://k/api/v1/pods?watch=true&labelSelector=a"))
    True
    >>> is_watch(httpx2.URL("https://k/api/v1/pods?labelSelector=watch%3Dtrue"))
    False
    """
    return url.params.get("watch") in ("true", "1")


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """httpx2's transport interface over two aiohttp sessions per event loop (watches,
    and the other requests)."""

    def __init__(self, tls: ssl.SSLContext | None) -> None:
        self._tls = tls
        self._sessions: dict[bool, aiohttp.ClientSession] = {}
        """By `is_watch`: the watches' session, and the other requests'."""
        self._loop: asyncio.AbstractEventLoop | None = None

    def _current(self, watch: bool) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # (Sessions of an earlier loop are dropped, not closed: their loop is gone.)
            self._sessions, self._loop = {}, loop
        session = self._sessions.get(watch)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                ssl=self._tls if self._tls is not None else False,
                limit=0 if watch else MAX_CONNECTIONS,
                limit_per_host=0,
                keepalive_timeout=KEEPALIVE_SECONDS,
            )
            session = self._sessions[watch] = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=_NO_AUTO_HEADERS,
                auto_decompress=False,
                trust_env=False,
            )
        return session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        limits: dict[str, Any] = request.extensions.get("timeout") or {}
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=limits.get("pool"),
            sock_connect=limits.get("connect"),
            sock_read=limits.get("read"),
        )
        headers = [
            (key.decode("latin-1"), value.decode("latin-1"))
            for key, value in request.headers.raw
            if key.lower().decode("latin-1") not in _DROPPED_HEADERS
        ]
        body = await request.aread()
        try:
            response = await self._current(is_watch(request.url)).request(
                request.method,
                yarl.URL(str(request.url), encoded=True),  # as httpx2 encoded it
                headers=headers,
                data=body or None,
                timeout=timeout,
                allow_redirects=False,
                compress=None,
            )
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _error(error, request) from error
        return httpx2.Response(
            status_code=response.status,
            headers=[(k, v) for k, v in response.raw_headers],
            stream=_Body(response, request),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": b""},
        )

    async def aclose(self) -> None:
        sessions, self._sessions = self._sessions, {}
        if self._loop is asyncio.get_running_loop():
            for session in sessions.values():
                if not session.closed:
                    await session.close()
