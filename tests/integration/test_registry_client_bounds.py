"""The registry client against hostile HTTP servers of the test's own, on loopback:
the address policy (literal addresses, names after DNS, redirects, token realms),
deadlines, size limits, dot segments and what error messages may carry.

Every server listens on 127.0.0.x; the "denied" address is 127.0.0.2, denied by the
client's policy inside the allowed 127.0.0.0/8, so no packet ever leaves loopback.
Each server records what it received: a denied one must have received nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from galleon.oci import RegistryClient, Target, copy_image
from galleon.oci import errors as oci_errors
from galleon.oci.addresses import AddressDenied, AddressPolicy
from galleon_testkit.registry import Registry

pytestmark = pytest.mark.integration

POLICY = AddressPolicy.of(allow=["127.0.0.0/8"], deny=["127.0.0.2/32"])
IMAGE = "application/vnd.oci.image.manifest.v1+json"
MARKER = "REMOTE-BODY-MARKER"
LAYER = b"galleon layer bytes\n" * 100
CONFIG = b"{}"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": IMAGE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest(CONFIG),
            "size": len(CONFIG),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": digest(LAYER),
                "size": len(LAYER),
            }
        ],
    }
).encode()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Server:
    """An aiohttp server on one loopback address, recording every request."""

    host: str
    handler: Handler
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0

    async def start(self) -> Server:
        async def record(request: web.Request) -> web.StreamResponse:
            self.seen.append(
                (request.method, request.path_qs, request.headers.get("Authorization"))
            )
            return await self.handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def servers() -> AsyncIterator[Callable[[str, Handler], Awaitable[Server]]]:
    started: list[Server] = []

    async def start(host: str, handler: Handler) -> Server:
        server = await Server(host, handler).start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


async def ok(request: web.Request) -> web.StreamResponse:
    """A tiny honest registry of one image, `os:1.0.0`."""
    path = request.path
    if path == "/v2/":
        return web.json_response({})
    if path.endswith("/manifests/1.0.0") or path.endswith(f"/manifests/{digest(MANIFEST)}"):
        return web.Response(
            body=MANIFEST, content_type=IMAGE, headers={"Docker-Content-Digest": digest(MANIFEST)}
        )
    for blob in (CONFIG, LAYER):
        if path.endswith(f"/blobs/{digest(blob)}"):
            return web.Response(body=blob, content_type="application/octet-stream")
    return web.json_response({"errors": [{"code": "NOT_FOUND"}]}, status=404)


async def nothing(request: web.Request) -> web.StreamResponse:
    return web.json_response({})


async def test_a_denied_literal_address_is_never_connected_to(servers) -> None:
    denied = await servers("127.0.0.2", ok)
    async with RegistryClient(denied.url, policy=POLICY) as client:
        with pytest.raises(AddressDenied, match=r"127\.0\.0\.2 is in 127\.0\.0\.2/32"):
            await client.get_manifest("os", "1.0.0")
    assert denied.seen == []


async def test_a_name_is_checked_after_dns_resolution(servers) -> None:
    server = await servers("127.0.0.1", ok)
    policy = AddressPolicy.of(allow=["127.0.0.0/8"], deny=["127.0.0.1/32"])
    async with RegistryClient(f"http://localhost:{server.port}", policy=policy) as client:
        with pytest.raises(AddressDenied, match=r"localhost \((127\.0\.0\.1|::1)\)"):
            await client.get_manifest("os", "1.0.0")
    assert server.seen == []


async def test_loopback_is_denied_by_default(servers) -> None:
    server = await servers("127.0.0.1", ok)
    async with RegistryClient(server.url, policy=AddressPolicy.of()) as client:
        with pytest.raises(AddressDenied, match=r"127\.0\.0\.0/8"):
            await client.ping()
    assert server.seen == []


async def test_a_redirect_to_a_denied_address_is_not_followed(servers) -> None:
    denied = await servers("127.0.0.2", ok)

    async def redirecting(request: web.Request) -> web.StreamResponse:
        if "/blobs/" in request.path:
            raise web.HTTPTemporaryRedirect(f"{denied.url}{request.path}")
        return await ok(request)

    source = await servers("127.0.0.1", redirecting)
    async with RegistryClient(source.url, policy=POLICY) as client:
        with pytest.raises(AddressDenied):
            response = await client.open_blob("os", digest(LAYER), len(LAYER))
            response.release()
    assert denied.seen == []
    assert [s[0] for s in source.seen] == ["GET"]


async def test_a_token_realm_at_a_denied_address_gets_nothing(servers) -> None:
    denied = await servers("127.0.0.2", nothing)

    async def challenging(request: web.Request) -> web.StreamResponse:
        raise web.HTTPUnauthorized(
            headers={
                "WWW-Authenticate": f'Bearer realm="{denied.url}/token",service="r",'
                'scope="repository:os:pull"'
            }
        )

    source = await servers("127.0.0.1", challenging)
    async with RegistryClient(
        source.url, username="tenant", password="secret", policy=POLICY
    ) as client:
        with pytest.raises(AddressDenied):
            await client.get_manifest("os", "1.0.0")
    assert denied.seen == []


async def test_an_http_token_realm_of_an_https_registry_is_refused() -> None:
    client = RegistryClient("https://registry.invalid", username="u", password="p")
    with pytest.raises(oci_errors.ProtocolError, match="not https"):
        await client._authorize('Bearer realm="http://registry.invalid/token"', "")
    await client.close()


async def test_a_drip_fed_manifest_ends_at_the_deadline(servers) -> None:
    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": IMAGE})
        await response.prepare(request)
        for _ in range(600):
            await response.write(b" ")
            await asyncio.sleep(0.5)
        return response

    source = await servers("127.0.0.1", drip)
    async with RegistryClient(source.url, policy=POLICY, deadline=3.0) as client:
        began = time.monotonic()
        with pytest.raises(oci_errors.Unavailable, match=r"in time|within 3s"):
            await client.get_manifest("os", "1.0.0")
        assert time.monotonic() - began < 30, "the deadline did not bound the request"


async def test_error_messages_carry_the_code_never_the_body(servers) -> None:
    async def unavailable(request: web.Request) -> web.StreamResponse:
        body = {"errors": [{"code": "UNAVAILABLE", "message": MARKER * 100}]}
        return web.json_response(body, status=503)

    async def html(request: web.Request) -> web.StreamResponse:
        return web.Response(text=f"<html>{MARKER}</html>", status=500, content_type="text/html")

    for handler, expected in ((unavailable, "503 UNAVAILABLE"), (html, "500")):
        source = await servers("127.0.0.1", handler)
        async with RegistryClient(source.url, policy=POLICY) as client:
            with pytest.raises(oci_errors.Unavailable) as raised:
                await client.get_manifest("os", "1.0.0")
        assert expected in str(raised.value)
        assert MARKER not in str(raised.value)


async def test_a_blob_longer_than_declared_is_never_committed(servers, registry: Registry) -> None:
    async def long_blob(request: web.Request) -> web.StreamResponse:
        if request.path.endswith(f"/blobs/{digest(LAYER)}"):
            response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
            await response.prepare(request)
            await response.write(LAYER)
            for _ in range(64):  # then more, as if it never ended
                await response.write(b"x" * 65536)
            return response
        return await ok(request)

    source = await servers("127.0.0.1", long_blob)
    async with (
        RegistryClient(source.url, policy=POLICY) as src,
        RegistryClient(registry.url, policy=POLICY) as dst,
    ):
        with pytest.raises(oci_errors.ProtocolError, match=f"{len(LAYER)} bytes its descriptor"):
            await copy_image(src, "os", "1.0.0", Target(dst, "copies/os", ("1.0.0",)))
        assert not await dst.has_blob("copies/os", digest(LAYER))
        assert not await dst.has_manifest("copies/os", "1.0.0")


async def test_an_upload_location_with_dot_segments_is_not_followed(servers) -> None:
    async def traversal(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            return web.Response(
                status=202, headers={"Location": "/v2/mine/../../team-b/os/blobs/uploads/1"}
            )
        return web.json_response({"errors": [{"code": "NOT_FOUND"}]}, status=404)

    destination = await servers("127.0.0.1", traversal)
    async with RegistryClient(destination.url, policy=POLICY) as client:
        with pytest.raises(oci_errors.ProtocolError, match="dot segment"):
            await client.upload_blob("mine/os", digest(LAYER), len(LAYER), LAYER)
    assert [method for method, _, _ in destination.seen] == ["POST"]


async def test_a_traversal_reference_never_reaches_a_path(servers) -> None:
    source = await servers("127.0.0.1", ok)
    async with RegistryClient(source.url, policy=POLICY) as client:
        with pytest.raises(oci_errors.ProtocolError, match="neither a tag nor"):
            await client.get_manifest("os", "../../team-b/os/manifests/1.0.2")
        with pytest.raises(oci_errors.ProtocolError, match="not sha256"):
            await client.delete_manifest("os", "../../team-b/os/manifests/1.0.2")
    assert source.seen == []


async def test_a_token_is_used_whatever_words_the_registry_gives_its_scope(servers) -> None:
    """The challenge names the scope as "push,pull"; galleon asks "pull,push": the
    token is still sent with the streamed upload (which cannot answer a 401)."""
    token = "tok-123"

    async def realm(request: web.Request) -> web.StreamResponse:
        return web.json_response({"token": token})

    auth = await servers("127.0.0.1", realm)

    async def registry_(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {token}":
            raise web.HTTPUnauthorized(
                headers={
                    "WWW-Authenticate": f'Bearer realm="{auth.url}/token",service="r",'
                    'scope="repository:mine/os:push,pull"'
                }
            )
        if request.method == "POST":
            return web.Response(status=202, headers={"Location": "/v2/mine/os/blobs/uploads/1"})
        if request.method == "PUT":
            await request.read()
            return web.Response(status=201)
        return web.json_response({})

    destination = await servers("127.0.0.1", registry_)

    async def body() -> AsyncIterator[bytes]:
        yield LAYER

    async with RegistryClient(destination.url, policy=POLICY) as client:
        await client.upload_blob("mine/os", digest(LAYER), len(LAYER), body())
    puts = [authorization for method, _, authorization in destination.seen if method == "PUT"]
    assert puts == [f"Bearer {token}"]


async def test_a_tag_list_is_bounded_and_checked(servers) -> None:
    async def tags(request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/huge/tags/list"):
            return web.Response(body=b" " * (5 * 1024 * 1024), content_type="application/json")
        return web.json_response({"tags": ["1.0.0", "../x", "ok_tag", 7]})

    source = await servers("127.0.0.1", tags)
    async with RegistryClient(source.url, policy=POLICY) as client:
        assert await client.list_tags("os") == ["1.0.0", "ok_tag"]
        with pytest.raises(oci_errors.ProtocolError, match="more than 4194304"):
            await client.list_tags("huge")
