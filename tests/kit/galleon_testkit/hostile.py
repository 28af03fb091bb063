"""A registry that lies: an OCI distribution server of the test's own, serving a small
valid image under every repository and one attack per repository `attack/<scenario>`.

    with (
        HostileRegistry("127.0.0.2", scenarios=False) as denied,   # the policy denies it
        HostileRegistry("127.0.0.3", scenarios=False) as other,    # another host
        HostileRegistry(
            credentials=("tenant", "s3cret"),
            denied_url=denied.url,
            other_url=other.url,
            victim="galleon/b/gallery/os/manifests/1.0.0",
        ) as hostile,
    ):
        hostile.reference("traversal-header")  # "127.0.0.1:41234/attack/traversal-header:1.0.0"
        ...                                     # an ImageVersion reads from it
        other.authorizations()                  # [] unless a credential leaked
        denied.received_any()                   # False unless the policy let a packet through

Why `http.server` (a `ThreadingHTTPServer`, a thread per connection) and not
aiohttp.web: a hostile server must put on the wire what a well-behaved framework
refuses to: a body longer than its Content-Length says or than its descriptor
declared, a chunked body that never ends, a response dribbled a byte at a time, a
`Docker-Content-Digest` that is no digest at all. `wfile` writes straight to the
socket (unbuffered), so every byte is where the scenario put it, and the server has
no event loop to share with the test or the galleon client it exercises.

Rules of this module:
- Loopback only: the address must be in 127.0.0.0/8 (127.0.0.2 and 127.0.0.3 work
  on Linux's `lo` with no setup), the port is picked by the kernel (port 0). Nothing
  here ever sends a packet elsewhere; redirects and realms name the `denied_url` and
  `other_url` it is given (other HostileRegistry instances).
- Every request is recorded before it is answered (`RecordedRequest`: method, raw
  path, every header, Authorization included, body size), with the status and the
  body bytes sent once answered.
- Every error body (401, 404, 503, the redirects) carries `REMOTE_TEXT_MARKER`, so a
  test can check that no remote text reaches a status or an Event.
- The image is generated in memory from a seed: the same seed gives the same bytes
  on every server (a redirect to another host serves exactly what was asked for).
- Endless answers end: at `close()`, when the client goes away (a drip notices at
  once, not at its next byte), or after
  `endless_cap` bytes (so a client that never stops reading cannot fill the disk of
  the registry it copies into), whichever comes first.
- `close()` stops accepting, shuts every open connection down, wakes every sleeping
  drip, and joins every handler thread and the serving thread: nothing is left.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import http.server
import ipaddress
import json
import random
import re
import select
import socket
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"

REMOTE_TEXT_MARKER = "MARKER-REMOTE-BODY"
"""In every error body this server sends: it must never show in a status or an Event."""
HUGE_MANIFEST_BYTES = 100 * 1000 * 1000
"""The size of the `huge-manifest*` answers (100 MB; galleon reads at most 4 MiB)."""
LONG_BLOB_EXTRA = 1 << 20
"""Bytes the `long-blob` layer streams beyond the size its descriptor declares."""
DEFAULT_ENDLESS_CAP = 256 << 20
"""Where "forever" ends for a client that never stops reading (256 MiB)."""
TOKEN = "hostile-anonymous-token"
"""The bearer token every server's `/token` hands out (to anyone, asked or not)."""
TAG = "1.0.0"

SCENARIOS: dict[str, str] = {
    "traversal-header": "Docker-Content-Digest is ../ up to the victim's manifest",
    "traversal-encoded-header": "Docker-Content-Digest is %2e%2e/ up to the victim's manifest",
    "traversal-descriptor": "a layer whose digest is ../ up to the victim's manifest",
    "traversal-descriptor-sha256": "a layer whose digest is sha256:../../x",
    "traversal-descriptor-encoded": "a layer whose digest is sha256:%2e%2e%2f... to the victim",
    "traversal-index-child": "an index whose child's digest is ../ up to the victim's manifest",
    "huge-manifest": "a 100 MB manifest, with its Content-Length",
    "huge-manifest-chunked": "a 100 MB manifest, chunked (no Content-Length)",
    "mismatch-header": "the manifest's bytes are not the digest its header claims",
    "mismatch-by-digest": "an index whose child, asked for by digest, is other bytes",
    "long-blob": "a layer 1 MiB longer than its descriptor declares (and so another digest)",
    "endless-blob": "a layer that never ends (chunked, up to endless_cap)",
    "redirect-denied": "blob GETs answer 307 to the denied address",
    "redirect-denied-manifest": "manifest GETs answer 307 to the denied address",
    "redirect-other-host": "blob GETs answer 307 to another host serving the right bytes",
    "realm-denied": "everything answers 401 with a Bearer realm on the denied address",
    "realm-other-host": "everything answers 401 with a Bearer realm on another host",
    "drip": "the manifest, one byte every drip_interval seconds",
    "drip-blob": "the layers, one byte every drip_interval seconds",
    "unavailable": "503 to everything, the body a JSON error carrying the marker",
}
"""Each attack, served under the repository `attack/<name>`, and what it does."""

_API_PATH = re.compile(r"^/v2/(?P<name>.+)/(?P<kind>manifests|blobs)/(?P<reference>[^/]*)$")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data)}


def _manifest(config: dict[str, Any], layers: list[dict[str, Any]]) -> bytes:
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers}
    return json.dumps(document, sort_keys=True).encode()


@dataclass(frozen=True)
class ServedImage:
    """A small valid image, all in memory: a config and two layers of seeded bytes.

    >>> image = ServedImage.generate(seed=1)
    >>> image.manifest_digest == sha256_digest(image.manifest), len(image.layers)
    (True, 2)
    """

    config: bytes
    layers: tuple[bytes, ...]
    manifest: bytes

    @classmethod
    def generate(
        cls, seed: int = 17, layer_sizes: tuple[int, ...] = (64 << 10, 256 << 10)
    ) -> ServedImage:
        rng = random.Random(seed)
        layers = tuple(rng.randbytes(size) for size in layer_sizes)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Labels": {"galleon.test/hostile-seed": str(seed)}},
                "rootfs": {"type": "layers", "diff_ids": [sha256_digest(b) for b in layers]},
            },
            sort_keys=True,
        ).encode()
        manifest = _manifest(
            _descriptor(OCI_CONFIG, config), [_descriptor(OCI_LAYER, b) for b in layers]
        )
        return cls(config, layers, manifest)

    @staticmethod
    @functools.cache
    def for_repository(repository: str) -> ServedImage:
        """The image of one repository, seeded by its name (the same in every process)."""
        return ServedImage.generate(seed=zlib.crc32(repository.encode()))

    @property
    def manifest_digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def blobs(self) -> dict[str, bytes]:
        """Every blob by digest."""
        return {sha256_digest(b): b for b in (self.config, *self.layers)}

    def with_layer_digests(self, digests: list[str]) -> bytes:
        """This image's manifest with its first layers' digests replaced by `digests`
        (sizes and the other layers kept)."""
        layers = [_descriptor(OCI_LAYER, data) for data in self.layers]
        for layer, digest in zip(layers, digests, strict=False):
            layer["digest"] = digest
        return _manifest(_descriptor(OCI_CONFIG, self.config), layers)


@dataclass
class RecordedRequest:
    """One request as the server received it (and, once answered, what it sent)."""

    server: str
    """`host:port` of the server that received it."""
    number: int
    """Its place among the server's requests, from 0."""
    received_at: float
    """`time.monotonic()` when it was received."""
    method: str
    path: str
    """The request target exactly as sent (query included, nothing decoded)."""
    headers: tuple[tuple[str, str], ...]
    body_bytes: int
    status: int = 0
    """0 until answered."""
    bytes_sent: int = 0
    """Bytes written after the headers (chunk framing included) before the answer
    ended or the client went away."""
    completed: bool = False
    """Whether the whole body was written."""
    ended_at: float | None = None
    """`time.monotonic()` when the answer ended, written whole or not (None: still
    being answered, e.g. a drip the client has not given up on)."""

    @property
    def authorization(self) -> str | None:
        return next((v for k, v in self.headers if k.lower() == "authorization"), None)


class _ClientGone(Exception):
    """The client closed the connection, or the server is closing."""


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = False  # handler threads are joined by server_close()
    block_on_close = True
    registry: HostileRegistry

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up is what attacks are about: not an error to print."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # a last resort: close() shuts every connection down first
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.registry._opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.registry._closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        self.server.registry._handle(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class HostileRegistry:
    """An OCI distribution server on a loopback address, serving `ServedImage` under
    every repository and, when `scenarios`, the attacks of `SCENARIOS` under
    `attack/<name>`.

    `credentials` (user, password): every request but the scenarios' own 401s must
    carry them as HTTP Basic (a `Basic` challenge otherwise), so a client has
    credentials to leak. `denied_url` and `other_url`: base URLs of the servers the
    redirect and realm scenarios point at. `victim`: the repository path and
    reference (`<repository>/manifests/<tag>`) the traversal scenarios aim at, reached
    from the client's own repository with `climb` `..` segments (galleon's repository
    `galleon/<namespace>/<gallery>/<definition>` plus `manifests` or `blobs` is 5).
    """

    def __init__(
        self,
        address: str = "127.0.0.1",
        *,
        scenarios: bool = True,
        credentials: tuple[str, str] | None = None,
        denied_url: str | None = None,
        other_url: str | None = None,
        victim: str = "galleon/victim/gallery/os/manifests/1.0.0",
        climb: int = 5,
        drip_interval: float = 2.0,
        endless_cap: int = DEFAULT_ENDLESS_CAP,
        image: ServedImage | None = None,
    ) -> None:
        if not ipaddress.ip_address(address).is_loopback:
            raise ValueError(f"{address} is not a loopback address: tests stay on 127.0.0.0/8")
        self.address = address
        self.scenarios = scenarios
        self.credentials = credentials
        self.denied_url = denied_url
        self.other_url = other_url
        self.victim = victim
        self.climb = climb
        self.drip_interval = drip_interval
        self.endless_cap = endless_cap
        self.image: ServedImage = image or ServedImage.generate()
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server = _Server((address, 0), _Handler)
        self._server.registry = self
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    # -- where it is ---------------------------------------------------------------

    @property
    def host(self) -> str:
        """`address:port`, as an image reference names a registry."""
        return f"{self.address}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def reference(self, scenario: str, tag: str = TAG) -> str:
        """The image reference of a scenario's repository."""
        if scenario not in SCENARIOS:
            raise KeyError(f"no scenario {scenario!r}; there are {', '.join(SCENARIOS)}")
        return f"{self.host}/attack/{scenario}:{tag}"

    # -- what it received ----------------------------------------------------------

    def requests(self) -> list[RecordedRequest]:
        """Every request so far, in arrival order (copies: later answers do not
        change them)."""
        with self._lock:
            return [replace(r) for r in self._requests]

    def received_any(self) -> bool:
        with self._lock:
            return bool(self._requests)

    def authorizations(self) -> list[tuple[str, str]]:
        """(path, Authorization header) of every request that carried one."""
        return [(r.path, r.authorization) for r in self.requests() if r.authorization]

    def scenario_requests(self, scenario: str) -> list[RecordedRequest]:
        """The requests for the repository `attack/<scenario>`."""
        prefix = f"/v2/attack/{scenario}/"
        return [r for r in self.requests() if r.path.startswith(prefix)]

    # -- life ----------------------------------------------------------------------

    def start(self) -> HostileRegistry:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"hostile-registry-{self.host}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop: no new connection, every open one shut, every handler thread joined."""
        with self._lock:
            self._stopping.set()
            connections = list(self._connections)
        if self._thread is not None:
            self._server.shutdown()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()  # joins the handler threads (block_on_close)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> HostileRegistry:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)
            closing = self._stopping.is_set()
        if closing:  # accepted while close() ran: do not let it wait for a request
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def _closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    # -- answering -------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        received_at = time.monotonic()
        body = _read_body(handler)
        with self._lock:
            recorded = RecordedRequest(
                self.host,
                len(self._requests),
                received_at,
                handler.command,
                handler.path,
                tuple(handler.headers.items()),
                body,
            )
            self._requests.append(recorded)
        try:
            self._route(_Exchange(handler, recorded, self._stopping))
        except _ClientGone:
            handler.close_connection = True
        finally:
            recorded.ended_at = time.monotonic()

    def _route(self, ex: _Exchange) -> None:
        path = ex.handler.path.split("?", 1)[0]
        if path == "/token":
            return ex.json(200, {"token": TOKEN, "access_token": TOKEN})
        match = _API_PATH.match(path)
        name = match["name"] if match else ""
        scenario = ""
        if self.scenarios and name.startswith("attack/"):
            scenario = name.removeprefix("attack/")
        if scenario == "unavailable":
            return ex.error(503, "UNAVAILABLE", "the registry is down for maintenance")
        if scenario.startswith("realm-"):
            realm = self.denied_url if scenario == "realm-denied" else self.other_url
            challenge = (
                f'Bearer realm="{realm}/token",service="hostile",scope="repository:{name}:pull"'
            )
            return ex.error(401, "UNAUTHORIZED", "authentication required", challenge)
        if self.credentials is not None and ex.authorization() != _basic(*self.credentials):
            return ex.error(401, "UNAUTHORIZED", "authentication required", 'Basic realm="hostile"')
        if path in ("/v2", "/v2/"):
            return ex.json(200, {})
        if match is None or (scenario and scenario not in SCENARIOS):
            return ex.error(404, "NAME_UNKNOWN", "no such repository")
        image = self.image_for(name)
        if match["kind"] == "manifests":
            return self._manifest(ex, scenario, image, match["reference"])
        return self._blob(ex, scenario, image, match["reference"])

    def image_for(self, repository: str) -> ServedImage:
        """The image served under `repository`: each attack repository has its own
        (so no blob of one is already in the tenant's repository when another is
        copied), the same on every server; every other repository has `image`."""
        if repository.startswith("attack/"):
            return ServedImage.for_repository(repository)
        return self.image

    def _manifest(self, ex: _Exchange, scenario: str, image: ServedImage, reference: str) -> None:
        up = "../" * self.climb
        headers: dict[str, str] = {}
        body, kind = image.manifest, OCI_MANIFEST
        if scenario == "traversal-header":
            headers["Docker-Content-Digest"] = up + self.victim
        elif scenario == "traversal-encoded-header":
            headers["Docker-Content-Digest"] = "%2e%2e/" * self.climb + self.victim
        elif scenario == "traversal-descriptor":
            body = image.with_layer_digests([up + self.victim])
        elif scenario == "traversal-descriptor-sha256":
            body = image.with_layer_digests(["sha256:../../x"])
        elif scenario == "traversal-descriptor-encoded":
            body = image.with_layer_digests(["sha256:" + "%2e%2e%2f" * self.climb + self.victim])
        elif scenario == "traversal-index-child":
            child = {**_descriptor(OCI_MANIFEST, image.manifest), "digest": up + self.victim}
            body, kind = _index([child]), OCI_INDEX
        elif scenario in ("huge-manifest", "huge-manifest-chunked"):
            return ex.endless(
                200,
                OCI_MANIFEST,
                HUGE_MANIFEST_BYTES,
                chunked=scenario.endswith("chunked"),
                byte=b" ",
            )
        elif scenario == "mismatch-header":
            headers["Docker-Content-Digest"] = sha256_digest(image.manifest + b" ")
        elif scenario == "mismatch-by-digest":
            if reference == image.manifest_digest:  # asked by digest: other bytes
                return ex.send(200, OCI_MANIFEST, image.manifest + b"\n")
            child = {**_descriptor(OCI_MANIFEST, image.manifest), "platform": _PLATFORM}
            body, kind = _index([child]), OCI_INDEX
        elif scenario == "redirect-denied-manifest":
            return ex.redirect(f"{self.denied_url}{ex.handler.path}")
        elif scenario == "drip":
            return ex.drip(OCI_MANIFEST, image.manifest, self.drip_interval)
        if reference.startswith("sha256:") and reference != sha256_digest(body):
            return ex.error(404, "MANIFEST_UNKNOWN", "no such manifest")
        headers.setdefault("Docker-Content-Digest", sha256_digest(body))
        ex.send(200, kind, body, headers)

    def _blob(self, ex: _Exchange, scenario: str, image: ServedImage, digest: str) -> None:
        data = image.blobs.get(digest)
        if data is None:
            return ex.error(404, "BLOB_UNKNOWN", "no such blob")
        if scenario == "redirect-denied":
            return ex.redirect(f"{self.denied_url}{ex.handler.path}")
        if scenario == "redirect-other-host":
            return ex.redirect(f"{self.other_url}{ex.handler.path}")
        if scenario == "drip-blob":
            return ex.drip("application/octet-stream", data, self.drip_interval)
        if scenario == "long-blob" and data == image.layers[0]:
            extra = random.Random(len(data)).randbytes(LONG_BLOB_EXTRA)
            return ex.send(200, "application/octet-stream", data + extra)
        if scenario == "endless-blob" and data == image.layers[0]:
            return ex.endless(200, "application/octet-stream", self.endless_cap, chunked=True)
        ex.send(200, "application/octet-stream", data, {"Docker-Content-Digest": digest})


_PLATFORM = {"architecture": "amd64", "os": "linux"}


def _index(children: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}, sort_keys=True
    ).encode()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _read_body(handler: _Handler) -> int:
    """Read (and drop) the request's body; return its size."""
    length = handler.headers.get("Content-Length")
    if length is not None and length.isdigit():
        left, size = int(length), int(length)
        while left > 0:
            chunk = handler.rfile.read(min(left, 1 << 16))
            if not chunk:
                break
            left -= len(chunk)
        return size
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        size = 0
        while True:
            line = handler.rfile.readline(1024)
            count = int(line.split(b";")[0].strip() or b"0", 16)
            if count == 0:
                handler.rfile.readline(1024)
                return size
            size += len(handler.rfile.read(count))
            handler.rfile.readline(1024)
    return 0


@dataclass
class _Exchange:
    """One answer being written; raises _ClientGone when the client went away."""

    handler: _Handler
    recorded: RecordedRequest
    stopping: threading.Event
    _head: bool = field(init=False)

    def __post_init__(self) -> None:
        self._head = self.handler.command == "HEAD"

    def authorization(self) -> str | None:
        return self.handler.headers.get("Authorization")

    def _start(self, status: int, headers: dict[str, str]) -> None:
        self.recorded.status = status
        try:
            self.handler.send_response(status)
            for key, value in headers.items():
                self.handler.send_header(key, value)
            self.handler.end_headers()
        except OSError as error:
            raise _ClientGone from error

    def _write(self, data: bytes) -> None:
        if self.stopping.is_set():
            raise _ClientGone
        try:
            self.handler.wfile.write(data)
        except OSError as error:
            raise _ClientGone from error
        self.recorded.bytes_sent += len(data)

    def send(
        self, status: int, kind: str, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self._start(
            status, {"Content-Type": kind, "Content-Length": str(len(body)), **(headers or {})}
        )
        if not self._head:
            self._write(body)
        self.recorded.completed = True

    def json(self, status: int, document: Any, headers: dict[str, str] | None = None) -> None:
        self.send(status, "application/json", json.dumps(document).encode(), headers)

    def error(self, status: int, code: str, message: str, challenge: str | None = None) -> None:
        """A distribution-spec error answer whose message carries the marker."""
        document = {
            "errors": [
                {
                    "code": code,
                    "message": f"{REMOTE_TEXT_MARKER} {message}",
                    "detail": REMOTE_TEXT_MARKER,
                }
            ]
        }
        self.json(status, document, {"WWW-Authenticate": challenge} if challenge else None)

    def redirect(self, location: str) -> None:
        body = f"{REMOTE_TEXT_MARKER} moved to {location}".encode()
        self.send(307, "text/plain", body, {"Location": location})

    def drip(self, kind: str, body: bytes, interval: float) -> None:
        """The whole body declared, then one byte every `interval` seconds."""
        headers = {"Content-Type": kind, "Content-Length": str(len(body))}
        self._start(200, {**headers, "Docker-Content-Digest": sha256_digest(body)})
        if self._head:
            return
        for index in range(len(body)):
            self._write(body[index : index + 1])
            self._wait(interval)
        self.recorded.completed = True

    def _wait(self, seconds: float) -> None:
        """Sleep `seconds`; raise _ClientGone as soon as the server closes or the
        client hangs up (seen at once, so `ended_at` says when the client gave up)."""
        connection = self.handler.connection
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.stopping.is_set():
                raise _ClientGone
            readable, _, _ = select.select([connection], [], [], min(left, 0.1))
            if not readable:
                continue
            try:
                if not connection.recv(1, socket.MSG_PEEK):
                    raise _ClientGone  # end of stream: the client closed
            except OSError as error:
                raise _ClientGone from error
            self.stopping.wait(min(left, 0.1))  # it sent more: not gone, keep the pace

    def endless(
        self, status: int, kind: str, total: int, *, chunked: bool, byte: bytes | None = None
    ) -> None:
        """`total` bytes (spaces, or seeded random bytes), with a Content-Length or
        chunked; the client may hang up at any point."""
        headers = {"Content-Type": kind}
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Content-Length"] = str(total)
        self._start(status, headers)
        if self._head:
            return
        rng = random.Random(total)
        left = total
        for piece in _pieces(left, 1 << 16):
            data = byte * piece if byte is not None else rng.randbytes(piece)
            self._write(b"%x\r\n%s\r\n" % (piece, data) if chunked else data)
            left -= piece
        if chunked:
            self._write(b"0\r\n\r\n")
        self.recorded.completed = True


def _pieces(total: int, size: int) -> Iterator[int]:
    while total > 0:
        yield min(size, total)
        total -= size
