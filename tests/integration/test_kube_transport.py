"""The operator's Kubernetes API client over its aiohttp transport
(`galleon.kube.transport`), against the real apiserver: what lightkube sent and read
over httpx2's own transport still goes through, byte for byte.

- Selectors with characters a URL must escape select what they say.
- A LIST large enough for the apiserver to gzip is decoded.
- A watch delivers events in order and ends when the server ends it.
- Watches do not take the requests' connections: more watches than the requests'
  pool has connections all follow, and requests still go through.
- A token file is read again after a 401 and the request (with its body) sent again.
- aiohttp's failures surface as httpx2's: a refused connect, a server that never
  answers (the read timeout holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from lightkube import codecs
from lightkube.config.kubeconfig import KubeConfig
from lightkube.config.models import Cluster, User
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.authentication_v1 import SelfSubjectReview
from lightkube.resources.core_v1 import ConfigMap, Namespace, ServiceAccount

from galleon.kube import client as kube
from galleon.kube import transport
from galleon_testkit.processes import free_port

pytestmark = pytest.mark.integration
TIMEOUT = 60.0


def config_map(name: str, namespace: str, labels: dict[str, str], size: int = 0) -> Any:
    return codecs.from_dict(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "data": {"blob": "x" * size},
        }
    )


@contextlib.asynccontextmanager
async def admin_client(kubeconfig: Path) -> AsyncIterator[Any]:
    client = kube.client_for(KubeConfig.from_file(kubeconfig))
    try:
        yield client
    finally:
        await client.close()


def test_selectors_that_need_escaping_select_what_they_say(
    control_plane: Any, namespace: str
) -> None:
    async def run() -> None:
        async with admin_client(control_plane.kubeconfig) as client:
            for name, tier in (("a", "web"), ("b", "db"), ("c", "cache")):
                await client.create(config_map(name, namespace, {"tier": tier, "app": "x"}))
            picked = [
                m.metadata.name
                async for m in client.list(
                    ConfigMap, namespace=namespace, labels={"tier": ("web", "db")}
                )
            ]
            assert sorted(picked) == ["a", "b"]
            raw = await client._client._client.get(  # the selector as a user would write it
                f"/api/v1/namespaces/{namespace}/configmaps",
                params={"labelSelector": "tier notin (web,db),app=x"},
            )
            raw.raise_for_status()
            assert [i["metadata"]["name"] for i in raw.json()["items"]] == ["c"]

    asyncio.run(asyncio.wait_for(run(), TIMEOUT))


def test_a_large_list_comes_gzipped_and_is_decoded(control_plane: Any, namespace: str) -> None:
    async def run() -> None:
        async with admin_client(control_plane.kubeconfig) as client:
            for i in range(6):  # 6 x 64 KiB: over the apiserver's 128 KiB threshold
                await client.create(config_map(f"big-{i}", namespace, {"big": "yes"}, 64 << 10))
            response = await client._client._client.get(
                f"/api/v1/namespaces/{namespace}/configmaps", params={"labelSelector": "big=yes"}
            )
            response.raise_for_status()
            assert response.headers.get("content-encoding") == "gzip"
            items = response.json()["items"]
            assert len(items) == 6
            assert all(len(i["data"]["blob"]) == 64 << 10 for i in items)
            listed = [
                m async for m in client.list(ConfigMap, namespace=namespace, labels={"big": "yes"})
            ]
            assert len(listed) == 6

    asyncio.run(asyncio.wait_for(run(), TIMEOUT))


def test_a_watch_delivers_events_in_order_and_ends_with_the_server(
    control_plane: Any, namespace: str
) -> None:
    async def run() -> None:
        async with admin_client(control_plane.kubeconfig) as client:
            seen: list[tuple[str, str]] = []
            opened = asyncio.Event()

            async def watch() -> None:
                request = client._client.prepare_request(
                    "list",
                    ConfigMap,
                    namespace=namespace,
                    watch=True,
                    params={"timeoutSeconds": 3, "labelSelector": "w=yes"},
                )
                request.timeout = httpx2.Timeout(10, read=None)
                response = await client._client.send(
                    client._client.build_adapter_request(request), stream=True
                )
                try:
                    response.raise_for_status()
                    opened.set()
                    async for line in response.aiter_lines():
                        event = json.loads(line)
                        seen.append((event["type"], event["object"]["metadata"]["name"]))
                finally:
                    await response.aclose()

            task = asyncio.ensure_future(watch())
            await asyncio.wait_for(opened.wait(), TIMEOUT)
            for i in range(20):
                await client.create(config_map(f"w-{i}", namespace, {"w": "yes"}))
            await asyncio.wait_for(task, TIMEOUT)  # the server ends it after 3 s
            assert seen == [("ADDED", f"w-{i}") for i in range(20)]

    asyncio.run(asyncio.wait_for(run(), TIMEOUT))


def test_more_watches_than_the_request_pool_all_follow_and_requests_go_through(
    control_plane: Any, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the request pool at 2 connections, 6 watches run at once (each sees the
    ConfigMaps created after they began) while 12 requests, 6 at a time, share the 2."""
    monkeypatch.setattr(transport, "MAX_CONNECTIONS", 2)
    watches, names = 6, [f"p-{i}" for i in range(12)]

    async def run() -> None:
        async with admin_client(control_plane.kubeconfig) as client:
            await client.create(config_map("start", namespace, {"p": "yes"}))
            listed = [m async for m in client.list(ConfigMap, namespace=namespace)]
            version = max(int(m.metadata.resourceVersion) for m in listed)
            seen: list[set[str]] = [set() for _ in range(watches)]
            everything = asyncio.Event()

            async def follow(mine: set[str]) -> None:
                async for _, item in client.watch(
                    ConfigMap,
                    namespace=namespace,
                    labels={"p": "yes"},
                    resource_version=str(version),
                ):
                    mine.add(item.metadata.name)
                    if all(set(names) <= s for s in seen):
                        everything.set()

            following = [asyncio.ensure_future(follow(s)) for s in seen]
            try:
                slots = asyncio.Semaphore(6)

                async def create(name: str) -> None:
                    async with slots:
                        await client.create(config_map(name, namespace, {"p": "yes"}))
                        await client.get(ConfigMap, name, namespace=namespace)

                await asyncio.gather(*(create(n) for n in names))
                await asyncio.wait_for(everything.wait(), TIMEOUT)
            finally:
                for task in following:
                    task.cancel()
                await asyncio.gather(*following, return_exceptions=True)
            assert all(set(names) <= s for s in seen), [sorted(s) for s in seen]

    asyncio.run(asyncio.wait_for(run(), TIMEOUT))


def test_a_token_file_is_read_again_after_a_401_and_the_request_resent(
    control_plane: Any, namespace: str, tmp_path: Path
) -> None:
    """A SelfSubjectReview (a POST with a body, allowed to every authenticated user, so
    no RBAC has to spread first) of a ServiceAccount the test makes itself."""
    admin = yaml.safe_load(control_plane.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    control_plane.client().create(
        ServiceAccount(metadata=ObjectMeta(name="rotated", namespace=namespace))
    )
    token = control_plane.api_token_for_service_account(namespace, "rotated")
    token_file = tmp_path / "token"
    token_file.write_text("not-a-token")
    config = KubeConfig.from_one(
        cluster=Cluster(
            server=cluster["server"],
            certificate_auth_data=cluster["certificate-authority-data"],
        ),
        user=User(token_file=str(token_file)),
        namespace=namespace,
    )

    async def run() -> None:
        client = kube.client_for(config)
        try:
            with pytest.raises(ApiError) as refused:
                await client.create(SelfSubjectReview())
            assert refused.value.status.code == 401
            token_file.write_text(token)  # rotated, as kubelet does
            review = await client.create(SelfSubjectReview())  # 401 first, then sent again
            assert review.status is not None and review.status.userInfo is not None
            assert review.status.userInfo.username == (f"system:serviceaccount:{namespace}:rotated")
        finally:
            await client.close()

    asyncio.run(asyncio.wait_for(run(), TIMEOUT))


def test_a_refused_connect_is_an_httpx_connect_error() -> None:
    port = free_port()  # nothing listens there
    config = KubeConfig.from_one(
        cluster=Cluster(server=f"http://127.0.0.1:{port}"), user=User(token="t")
    )

    async def run() -> None:
        client = kube.client_for(config)
        try:
            with pytest.raises(httpx2.ConnectError):
                await client.get(Namespace, "default")
        finally:
            await client.close()

    asyncio.run(asyncio.wait_for(run(), TIMEOUT))


def test_a_server_that_never_answers_is_an_httpx_read_timeout() -> None:
    async def run() -> None:
        accepted: list[asyncio.StreamWriter] = []

        async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)  # read nothing, answer nothing

        server = await asyncio.start_server(hold, "127.0.0.1", 0, family=socket.AF_INET)
        port = server.sockets[0].getsockname()[1]
        config = KubeConfig.from_one(
            cluster=Cluster(server=f"http://127.0.0.1:{port}"), user=User(token="t")
        )
        client = kube.client_for(config)
        try:
            began = asyncio.get_running_loop().time()
            with pytest.raises(httpx2.ReadTimeout):
                await client._client._client.get(
                    "/api/v1/namespaces/default/pods/p", timeout=httpx2.Timeout(5, read=0.5)
                )
            assert asyncio.get_running_loop().time() - began < 5
            assert accepted, "the request reached the server"
        finally:
            await client.close()
            for writer in accepted:
                writer.close()
            server.close()
            await server.wait_closed()

    asyncio.run(asyncio.wait_for(run(), TIMEOUT))
