"""One tenant's failing source costs that tenant, not the cluster; a ResourceQuota
bounds how many versions a namespace publishes.

The real operator, real registries and the real apiserver (with the
kube-controller-manager's quota controller). The failing source is a small HTTP
server of the test's own in front of a real registry: its manifests resolve, its
blobs answer 503 until the test lets them through (a registry whose storage backend
is down), so every pass of namespace A's versions takes its replication slots and
fails. The operator runs with 2 replication slots, 1 per namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, ResourceQuota
from lightkube.types import PatchType

from galleon.kube.resources import ImageVersion
from galleon.oci import RegistryClient
from galleon_testkit.images import TestImage, build_image, push_image
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import stays_true, wait_for
from galleon_testkit.world import World

pytestmark = pytest.mark.integration

QUOTA = "count/imageversions.galleon.dev"
MANIFEST_BY_DIGEST = re.compile(r"^/v2/sources/os/manifests/(sha256:[0-9a-f]{64})$")
ATTEMPTS_PER_PASS = 3
"""The operator's default `copy_attempts_per_pass`."""
WINDOW_SECONDS = 20.0


class FailingSource:
    """A registry proxy on 127.0.0.1: GET and HEAD are passed to `upstream`, except
    blobs, answered 503 while `failing`. Every request is recorded (monotonic time,
    method, path, status)."""

    def __init__(self, upstream: str) -> None:
        source = self
        self.failing = True
        self.requests: list[tuple[float, str, str, int]] = []
        self._lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                if source.failing and "/blobs/" in self.path:
                    body = b'{"errors": [{"code": "UNAVAILABLE", "message": "storage down"}]}'
                    status, headers = 503, {"Content-Type": "application/json"}
                else:
                    status, headers, body = self._forward()
                with source._lock:
                    source.requests.append((time.monotonic(), self.command, self.path, status))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    with contextlib.suppress(OSError):
                        self.wfile.write(body)

            do_HEAD = do_GET

            def _forward(self) -> tuple[int, dict[str, str], bytes]:
                accept = ", ".join(self.headers.get_all("Accept") or [])
                request = urllib.request.Request(
                    upstream + self.path,
                    method=self.command,
                    headers={"Accept": accept} if accept else {},
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        status, found, body = answer.status, answer.headers, answer.read()
                except urllib.error.HTTPError as error:
                    status, found, body = error.code, error.headers, error.read()
                kept = ("Content-Type", "Docker-Content-Digest", "Docker-Distribution-Api-Version")
                headers = {name: found[name] for name in kept if found.get(name)}
                if self.command == "HEAD" and found.get("Content-Length"):
                    # A HEAD answers the size of what a GET would send.
                    return status, headers, b""
                return status, headers, body

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"

    def seen(self, since: float = 0.0, until: float = float("inf")) -> list[tuple[str, str, int]]:
        with self._lock:
            return [(m, p, s) for t, m, p, s in self.requests if since <= t < until]

    def __enter__(self) -> FailingSource:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def _push(registry: Registry, image: TestImage, tag: str) -> str:
    async with RegistryClient(registry.url) as client:
        return await push_image(client, "sources/os", image, [tag])


async def _manifest_digest(registry: Registry, repository: str, reference: str) -> str | None:
    async with RegistryClient(registry.url) as client:
        if not await client.has_manifest(repository, reference):
            return None
        return (await client.get_manifest(repository, reference)).digest


def publish(
    kube: Client, namespace: str, name: str, version: str, host: str, regions: list[str]
) -> None:
    kube.apply(
        codecs.from_dict(
            {
                "apiVersion": "galleon.dev/v1alpha1",
                "kind": "ImageVersion",
                "metadata": {"name": name},
                "spec": {
                    "imageDefinitionName": "os",
                    "version": version,
                    "source": {"image": f"{host}/sources/os:{version}", "plainHTTP": True},
                    "publishingProfile": {"targetRegions": [{"name": r} for r in regions]},
                },
            }
        ),
        namespace=namespace,
        force=True,
    )


def conditions(world: World, name: str) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in world.status(name).get("conditions") or []}


def retrying(world: World, name: str) -> bool:
    """Ready False RegistryUnavailable saying it retries, Reconciling True, Stalled False."""
    found = conditions(world, name)
    ready = found.get("Ready") or {}
    return (
        ready.get("status") == "False"
        and ready.get("reason") == "RegistryUnavailable"
        and "retrying with backoff" in ready.get("message", "")
        and "Unavailable" in ready.get("message", "")
        and (found.get("Reconciling") or {}).get("status") == "True"
        and (found.get("Stalled") or {}).get("status") == "False"
    )


def next_passes(log: str, namespace: str) -> dict[str, list[float]]:
    """Version → the waits the daemon loop logged before each of its next passes."""
    waits: dict[str, list[float]] = {}
    pattern = rf"replication: {re.escape(namespace)}/(\S+): .*?; next pass in ([0-9.]+)s"
    for name, wait in re.findall(pattern, log):
        waits.setdefault(name, []).append(float(wait))
    return waits


def runs(labels: list[str]) -> list[tuple[str, int]]:
    """Consecutive equal labels, counted: ["a", "a", "b"] → [("a", 2), ("b", 1)]."""
    found: list[tuple[str, int]] = []
    for label in labels:
        if found and found[-1][0] == label:
            found[-1] = (label, found[-1][1] + 1)
        else:
            found.append((label, 1))
    return found


@pytest.fixture
def registries(registry_factory: Callable[[int], list[Registry]]) -> list[Registry]:
    """The real source registry, then the registries of regions east and west."""
    return registry_factory(3)


@pytest.fixture
def failing_source(registries: list[Registry]) -> Iterator[FailingSource]:
    with FailingSource(registries[0].url) as source:
        yield source


@pytest.fixture
def tenant_a(kube: Client, namespace: str, registries: list[Registry]) -> Iterator[World]:
    world = World(kube, namespace, registries)
    yield world
    world.cleanup()


@pytest.fixture
def tenant_b(kube: Client, namespace: str, registries: list[Registry]) -> Iterator[World]:
    name = f"{namespace}-b"
    kube.create(Namespace(metadata=ObjectMeta(name=name)))
    yield World(kube, name, registries)
    with contextlib.suppress(ApiError):
        kube.delete(Namespace, name)


def test_a_namespace_whose_source_fails_costs_its_own_slot_not_the_clusters(
    tenant_a: World,
    tenant_b: World,
    failing_source: FailingSource,
    operator_factory: Any,
    tmp_path: Path,
) -> None:
    source, real = failing_source, tenant_a.source
    east_registry, west_registry = tenant_a.rest
    kube, a, b = tenant_a.kube, tenant_a.namespace, tenant_b.namespace
    operator = operator_factory(
        namespaces=[a, b],
        extra=["--replication-concurrency=2", "--namespace-replication-concurrency=1"],
    )
    east = tenant_a.region("east", [east_registry])
    west = tenant_a.region("west", [west_registry])
    tenant_a.parents(east)
    tenant_b.parents(east)
    versions = {"os-1-0-0": "1.0.0", "os-1-0-1": "1.0.1", "os-1-0-2": "1.0.2"}
    images = {
        name: build_image(tmp_path / name, size=1 << 20, layers=1, seed=40 + i)
        for i, name in enumerate([*versions, "os-2-0-0"])
    }
    for name, version in versions.items():
        run(_push(real, images[name], version))
    run(_push(real, images["os-2-0-0"], "2.0.0"))
    by_digest = {image.manifest.digest: name for name, image in images.items()}

    # Namespace A: three versions whose source's blobs answer 503.
    began = time.monotonic()
    for name, version in versions.items():
        publish(kube, a, name, version, source.host, [east])
    for name in versions:
        wait_for(lambda n=name: retrying(tenant_a, n), timeout=60, description=f"{name} retrying")

    # Namespace B publishes meanwhile: it has its own slot, and the second global one.
    b_began = time.monotonic()
    tenant_b.version("os-2-0-0", "2.0.0", [{"name": east}])
    tenant_b.wait_state("os-2-0-0", "Completed", timeout=60)
    b_seconds = time.monotonic() - b_began
    repository_b = f"galleon/{b}/gallery/os"
    assert run(_manifest_digest(east_registry, repository_b, "2.0.0")) == (
        images["os-2-0-0"].manifest.digest
    )

    # A's versions stay Ready False RegistryUnavailable, saying why, on every look.
    window_began = time.monotonic()
    stays_true(
        lambda: all(retrying(tenant_a, name) for name in versions),
        duration=WINDOW_SECONDS,
        description="A's versions Ready False RegistryUnavailable, retrying",
    )
    window = source.seen(window_began, time.monotonic())
    attempts_in_window = [p for _, p, _ in window if MANIFEST_BY_DIGEST.match(p)]
    print(
        f"\nB completed in {b_seconds:.1f}s; in {WINDOW_SECONDS:.0f}s the failing source saw "
        f"{len(window)} requests, {len(attempts_in_window)} copy attempts"
    )
    # A's passes never overlap (one slot for namespace A): in the order the source saw
    # them, attempts come in unbroken groups of 3, one group per pass. (With two slots
    # for A they interleave: "os-1-0-0", "os-1-0-1", "os-1-0-0", ...)
    attempts = [
        by_digest[m.group(1)]
        for _, path, _ in source.seen(began)
        if (m := MANIFEST_BY_DIGEST.match(path))
    ]
    groups = runs(attempts)
    assert len(groups) >= 4, groups
    assert all(count % ATTEMPTS_PER_PASS == 0 for _, count in groups[:-1]), groups
    # No busy loop: A's one pass at a time makes 3 attempts ~1 s and ~2 s apart (at
    # most 1.25 attempts a second), each a manifest and two blob requests.
    assert len(attempts_in_window) <= 1.5 * WINDOW_SECONDS
    assert len(window) <= 5 * WINDOW_SECONDS

    # Each pass ends and the next one comes after a growing backoff.
    waits = next_passes(operator.log_text(), a)
    for name in versions:
        assert len(waits.get(name, [])) >= 2, waits
        first = waits[name][:5]
        assert first == sorted(first) and first[0] < 1.5, waits

    # A spec change is seen while the source still fails: the passes end.
    kube.patch(
        ImageVersion,
        "os-1-0-0",
        {"spec": {"publishingProfile": {"targetRegions": [{"name": east}, {"name": west}]}}},
        namespace=a,
        patch_type=PatchType.MERGE,
    )
    generation = kube.get(ImageVersion, "os-1-0-0", namespace=a)["metadata"]["generation"]

    def second_region_planned() -> bool:
        status = tenant_a.status("os-1-0-0")
        return status.get("observedGeneration") == generation and bool(
            tenant_a.region_line("os-1-0-0", west)
        )

    wait_for(second_region_planned, timeout=30, description="the new region planned")

    # A restart resumes from the status: still retrying, and saying so, from the start.
    operator.kill()
    operator_factory(
        namespaces=[a, b],
        extra=["--replication-concurrency=2", "--namespace-replication-concurrency=1"],
    )
    stays_true(
        lambda: all(retrying(tenant_a, name) for name in versions),
        duration=8,
        description="A's versions still retrying after the operator's restart",
    )

    # The source itself cannot be changed (immutable): the tenant re-creates the version.
    with pytest.raises(ApiError, match="source is immutable"):
        publish(kube, a, "os-1-0-2", "1.0.2", real.host, [east])
    kube.delete(ImageVersion, "os-1-0-2", namespace=a)

    def gone() -> bool:
        try:
            kube.get(ImageVersion, "os-1-0-2", namespace=a)
        except ApiError as error:
            return error.status.code == 404
        return False

    wait_for(gone, timeout=60, description="os-1-0-2 deleted")
    publish(kube, a, "os-1-0-2", "1.0.2", real.host, [east])
    tenant_a.wait_state("os-1-0-2", "Completed", timeout=90)

    # The source recovers: the next passes complete A's other versions.
    source.failing = False
    tenant_a.wait_state("os-1-0-0", "Completed", timeout=120)
    tenant_a.wait_state("os-1-0-1", "Completed", timeout=120)
    repository_a = f"galleon/{a}/gallery/os"
    for name, version in versions.items():
        assert run(_manifest_digest(east_registry, repository_a, version)) == (
            images[name].manifest.digest
        )
    assert run(_manifest_digest(west_registry, repository_a, "1.0.0")) == (
        images["os-1-0-0"].manifest.digest
    )
    ready = conditions(tenant_a, "os-1-0-0")["Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "Replicated")


def _created(kube: Client, obj: Any) -> bool:
    try:
        kube.create(obj)
    except ApiError as error:
        if error.status.code == 409:  # the deleted one is still there
            return False
        raise
    return True


def test_a_resource_quota_bounds_the_versions_a_namespace_publishes(
    kube: Client, namespace: str
) -> None:
    """`count/imageversions.galleon.dev: "2"`: the third version is refused by the
    apiserver's ResourceQuota admission, with the quota's numbers; deleting one lets
    it in. No operator: the quota is the apiserver's and the controller manager's."""
    quota = codecs.from_dict(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "galleon-versions", "namespace": namespace},
            "spec": {"hard": {QUOTA: "2"}},
        }
    )
    made = {"at": 0.0}

    def counted() -> Any:
        """The quota as the controller counted it: until status.used names the resource,
        admission refuses every ImageVersion ("status unknown for quota"). The controller
        counts a custom resource only once its discovery (every 30 s) has found the CRD,
        and a quota made before that waits for the full resync (5 min): so the quota is
        made again until it is counted (the session's CRDs are seconds old)."""
        try:
            found = kube.get(ResourceQuota, "galleon-versions", namespace=namespace)
        except ApiError as error:
            if error.status.code != 404:
                raise
            found = None
        if found is not None and found.status and (found.status.used or {}).get(QUOTA) == "0":
            return found.status
        if time.monotonic() - made["at"] > 10:
            with contextlib.suppress(ApiError):
                kube.delete(ResourceQuota, "galleon-versions", namespace=namespace)
            wait_for(lambda: _created(kube, quota), timeout=30, description="the quota re-created")
            made["at"] = time.monotonic()
        return None

    status = wait_for(counted, timeout=120, description="the quota controller to count versions")
    assert status.hard == {QUOTA: "2"}
    host = "registry.example"
    publish(kube, namespace, "os-1-0-0", "1.0.0", host, ["east"])
    publish(kube, namespace, "os-1-0-1", "1.0.1", host, ["east"])
    with pytest.raises(ApiError) as refused:
        publish(kube, namespace, "os-1-0-2", "1.0.2", host, ["east"])
    assert refused.value.status.code == 403
    message = refused.value.status.message or ""
    assert "exceeded quota: galleon-versions" in message, message
    assert f"requested: {QUOTA}=1, used: {QUOTA}=2, limited: {QUOTA}=2" in message, message

    kube.delete(ImageVersion, "os-1-0-0", namespace=namespace)

    def admitted() -> bool:
        try:
            publish(kube, namespace, "os-1-0-2", "1.0.2", host, ["east"])
        except ApiError as error:
            if error.status.code == 403:
                return False  # the controller has not recounted the deletion yet
            raise
        return True

    wait_for(admitted, timeout=60, description="the third version admitted after a deletion")
