"""ImageVersion replication end to end: the real operator, real registries, real apiserver.

Each test builds its own world: registries on loopback ports, Regions named after
the test (Regions are cluster-scoped), a Gallery, an ImageDefinition, and
ImageVersions whose source is a generated image pushed to a source registry.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, codecs
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from galleon.controllers.runtime import FINALIZER
from galleon.kube.resources import ImageDefinition, ImageVersion, ScaleSet
from galleon.oci import RegistryClient
from galleon_testkit.images import TestImage, blob_digest, build_image, push_image
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import wait_for
from galleon_testkit.world import World

pytestmark = pytest.mark.integration
REPOSITORY = "galleon/{ns}/gallery/os"


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def _push(registry: Registry, image: TestImage, tag: str) -> str:
    async with RegistryClient(registry.url) as client:
        return await push_image(client, "sources/os", image, [tag])


async def _blobs_at(registry: Registry, repository: str, image: TestImage) -> list[tuple[str, int]]:
    async with RegistryClient(registry.url) as client:
        return [await blob_digest(client, repository, b.digest) for b in image.blobs]


async def _manifest_digest(registry: Registry, repository: str, reference: str) -> str | None:
    async with RegistryClient(registry.url) as client:
        if not await client.has_manifest(repository, reference):
            return None
        return (await client.get_manifest(repository, reference)).digest


@pytest.fixture
def world(
    kube: Client,
    namespace: str,
    registry_factory: Callable[[int], list[Registry]],
) -> Any:
    registries = registry_factory(4)
    made = World(kube, namespace, registries)
    yield made
    made.cleanup()


def test_a_version_is_copied_to_every_target_replica(
    world: World, operator: Any, tmp_path: Path
) -> None:
    east = world.region("east", world.rest[:2])
    west = world.region("west", [world.source])
    world.parents(west)
    image = build_image(tmp_path / "v1", size=6 << 20, layers=3, seed=1)
    run(_push(world.source, image, "1.0.0"))
    world.version("os-1-0-0", "1.0.0", [{"name": east, "regionalReplicaCount": 2}, {"name": west}])

    status = world.wait_state("os-1-0-0", "Completed")
    assert status["sourceDigest"] == image.manifest.digest
    repository = REPOSITORY.format(ns=world.namespace)
    assert status["repository"] == repository
    for registry in [*world.rest[:2], world.source]:
        assert run(_manifest_digest(registry, repository, "1.0.0")) == image.manifest.digest
        assert run(_blobs_at(registry, repository, image)) == [
            (b.digest, b.size) for b in image.blobs
        ]
    east_line = world.region_line("os-1-0-0", east)
    assert east_line["completedReplicas"] == 2 and east_line["progress"] == 100
    assert east_line["bytesCopied"] == 2 * image.size
    # The source registry is also a western replica: blobs are mounted, not copied.
    assert world.region_line("os-1-0-0", west)["bytesCopied"] == 0
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True", conditions
    assert conditions["Reconciling"]["status"] == "False"

    # The definition now offers 1.0.0 as latest in both regions.
    def latest() -> dict[str, str] | None:
        definition = world.kube.get(ImageDefinition, "os", namespace=world.namespace)
        by_region = (definition.get("status") or {}).get("latestVersionByRegion") or []
        found = {entry["region"]: entry["version"] for entry in by_region}
        return found if found == {east: "1.0.0", west: "1.0.0"} else None

    wait_for(latest, timeout=30, description="latest per region on the definition")

    # A patch release sharing every layer but the last copies only what is new.
    patched = build_image(tmp_path / "v2", size=0, layers=0, seed=2, base=image)
    run(_push(world.source, patched, "1.0.2"))
    world.version("os-1-0-2", "1.0.2", [{"name": east, "regionalReplicaCount": 2}, {"name": west}])
    world.wait_state("os-1-0-2", "Completed")
    new_bytes = patched.layers[-1].size + patched.config.size
    line = world.region_line("os-1-0-2", east)
    assert line["bytesCopied"] == 2 * new_bytes
    assert line["bytesSkipped"] == 2 * (patched.size - new_bytes)

    # Removing a region deletes its copies (the safety profile allows it by default).
    world.version("os-1-0-2", "1.0.2", [{"name": west}])

    def east_removed() -> bool:
        gone = all(
            run(_manifest_digest(r, repository, patched.manifest.digest)) is None
            for r in world.rest[:2]
        )
        return gone and not world.region_line("os-1-0-2", east)

    wait_for(east_removed, timeout=60, description="the east copies to be removed")
    assert run(_manifest_digest(world.rest[0], repository, "1.0.0")) == image.manifest.digest


def test_missing_parent_then_recovery_and_failed_regions_do_not_block_others(
    world: World, operator: Any, tmp_path: Path
) -> None:
    east = world.region("east", world.rest[:1])
    image = build_image(tmp_path / "v1", size=1 << 20, layers=1, seed=3)
    run(_push(world.source, image, "1.0.0"))
    world.version(
        "os-1-0-0",
        "1.0.0",
        [
            {"name": east},
            {"name": f"{world.namespace}-nowhere"},
            {"name": east.replace("east", "small"), "regionalReplicaCount": 1},
        ],
    )

    def waiting_for_parent() -> bool:
        conditions = {c["type"]: c for c in world.status("os-1-0-0").get("conditions") or []}
        ready = conditions.get("Ready") or {}
        return ready.get("reason") == "ImageDefinitionNotFound"

    wait_for(waiting_for_parent, timeout=30, description="ImageDefinitionNotFound")
    world.region("small", [])  # a region without registries
    world.parents(east)
    status = world.wait_state("os-1-0-0", "Failed", timeout=60)
    lines = {s["region"]: s for s in status["replicationStatus"]["summary"]}
    assert lines[east]["state"] == "Completed"
    assert lines[f"{world.namespace}-nowhere"]["details"].startswith("UnknownRegion")
    assert lines[east.replace("east", "small")]["details"].startswith("NotEnoughRegistries")
    assert status["replicationStatus"]["completedRegions"] == "1/3"
    assert run(_manifest_digest(world.rest[0], REPOSITORY.format(ns=world.namespace), "1.0.0"))


def test_a_missing_source_is_reported_not_retried_hot(world: World, operator: Any) -> None:
    east = world.region("east", world.rest[:1])
    world.parents(east)
    world.version("os-9-9-9", "9.9.9", [{"name": east}])

    def source_failed() -> dict[str, Any] | None:
        conditions = {c["type"]: c for c in world.status("os-9-9-9").get("conditions") or []}
        resolved = conditions.get("SourceResolved") or {}
        return resolved if resolved.get("reason") == "SourceNotFound" else None

    condition = wait_for(source_failed, timeout=30, description="SourceNotFound")
    assert "sources/os:9.9.9" in condition["message"]
    conditions = {c["type"]: c for c in world.status("os-9-9-9")["conditions"]}
    assert conditions["Stalled"]["status"] == "True"


def test_deleting_a_version_in_use_is_held_then_copies_are_removed(
    world: World, operator: Any, tmp_path: Path
) -> None:
    east = world.region("east", world.rest[:1])
    world.parents(east)
    image = build_image(tmp_path / "v1", size=1 << 20, layers=1, seed=4)
    run(_push(world.source, image, "1.0.0"))
    world.version("os-1-0-0", "1.0.0", [{"name": east}])
    world.wait_state("os-1-0-0", "Completed")
    repository = REPOSITORY.format(ns=world.namespace)
    # A ScaleSet that reports running the version (as the ScaleSet controller records it).
    world.kube.apply(
        codecs.from_dict(
            {
                "apiVersion": "galleon.dev/v1alpha1",
                "kind": "ScaleSet",
                "metadata": {"name": "fleet"},
                "spec": {
                    "region": east,
                    "capacity": 1,
                    "imageReference": {"imageDefinitionName": "os", "version": "latest"},
                    "osContainerName": "os",
                    "template": {"spec": {"containers": [{"name": "os", "image": "x"}]}},
                },
            }
        ),
        namespace=world.namespace,
        force=True,
    )
    world.kube.patch(
        ScaleSet.Status,
        "fleet",
        {"status": {"currentVersion": "1.0.0"}},
        namespace=world.namespace,
        patch_type=PatchType.MERGE,
    )
    # The ScaleSet really runs it: its instance is there on 1.0.0 (the status above is the
    # controller's to rewrite, the pod is what pulls the copy).
    wait_for(
        lambda: any(
            (p.metadata.labels or {}).get("galleon.dev/version") == "1.0.0"
            for p in world.kube.list(
                Pod, namespace=world.namespace, labels={"galleon.dev/scaleset": "fleet"}
            )
        ),
        timeout=60,
        description="the ScaleSet's instance on 1.0.0",
    )
    world.kube.delete(ImageVersion, "os-1-0-0", namespace=world.namespace)

    def held() -> bool:
        conditions = {c["type"]: c for c in world.status("os-1-0-0").get("conditions") or []}
        return (conditions.get("DeletionHeld") or {}).get("reason") == "InUse"

    wait_for(held, timeout=30, description="deletion to be held")
    assert run(_manifest_digest(world.rest[0], repository, "1.0.0")) == image.manifest.digest

    world.kube.delete(ScaleSet, "fleet", namespace=world.namespace)

    def deleted() -> bool:
        try:
            world.kube.get(ImageVersion, "os-1-0-0", namespace=world.namespace)
        except ApiError as error:
            return error.status.code == 404
        return False

    wait_for(deleted, timeout=60, description="the version to be deleted")
    assert run(_manifest_digest(world.rest[0], repository, image.manifest.digest)) is None


def _replica_bytes(world: World, name: str, region: str) -> list[tuple[int, int, str]]:
    line = world.region_line(name, region)
    return [(r["bytesDone"], r["bytesTotal"], r["message"]) for r in line.get("replicas") or []]


def _mid_copy(world: World, name: str, region: str) -> bool:
    return any(0 < done < total for done, total, _ in _replica_bytes(world, name, region))


def test_a_registry_stopped_mid_copy_is_retried_until_complete(
    world: World, operator_factory: Any, tmp_path: Path
) -> None:
    operator_factory(namespaces=[world.namespace], extra=["--status-interval=0.3"])
    east = world.region("east", world.rest[:2])
    world.parents(east)
    image = build_image(tmp_path / "big", size=384 << 20, layers=6, seed=11)
    run(_push(world.source, image, "1.0.0"))
    world.version("os-1-0-0", "1.0.0", [{"name": east, "regionalReplicaCount": 2}])
    # Progress is visible while bytes flow.
    wait_for(
        lambda: _mid_copy(world, "os-1-0-0", east),
        timeout=60,
        interval=0.05,
        description="progress mid-copy",
    )
    world.rest[1].kill()

    def retrying() -> bool:
        return any(
            "retrying" in message for _, _, message in _replica_bytes(world, "os-1-0-0", east)
        )

    wait_for(retrying, timeout=60, description="a retry to show in the replica's message")
    assert world.region_line("os-1-0-0", east)["state"] != "Completed"
    world.rest[1].start()
    world.wait_state("os-1-0-0", "Completed", timeout=120)
    repository = REPOSITORY.format(ns=world.namespace)
    for registry in world.rest[:2]:
        assert run(_blobs_at(registry, repository, image)) == [
            (b.digest, b.size) for b in image.blobs
        ]
        assert run(_manifest_digest(registry, repository, "1.0.0")) == image.manifest.digest


def test_an_operator_killed_mid_copy_resumes_without_recopying(
    world: World, operator_factory: Any, tmp_path: Path
) -> None:
    first = operator_factory(namespaces=[world.namespace], extra=["--status-interval=0.3"])
    east = world.region("east", world.rest[:1])
    world.parents(east)
    image = build_image(tmp_path / "big", size=384 << 20, layers=8, seed=12)
    run(_push(world.source, image, "1.0.0"))
    world.version("os-1-0-0", "1.0.0", [{"name": east}])
    largest = max(b.size for b in image.blobs)
    wait_for(
        # Four blobs move at once: past 4.5 blobs' worth, some have certainly finished.
        lambda: any(done > 4.5 * largest for done, _, _ in _replica_bytes(world, "os-1-0-0", east)),
        timeout=60,
        interval=0.05,
        description="a few blobs to be copied",
    )
    first.kill()
    line = world.region_line("os-1-0-0", east)
    assert line["state"] == "Replicating"
    operator_factory(namespaces=[world.namespace], extra=["--status-interval=0.3"])
    world.wait_state("os-1-0-0", "Completed", timeout=120)
    line = world.region_line("os-1-0-0", east)
    # Blobs finished before the crash were found at the destination and skipped.
    assert line["bytesSkipped"] > 0
    assert line["bytesCopied"] + line["bytesSkipped"] == image.size
    assert line["bytesCopied"] < image.size
    repository = REPOSITORY.format(ns=world.namespace)
    assert run(_blobs_at(world.rest[0], repository, image)) == [
        (b.digest, b.size) for b in image.blobs
    ]


def test_a_second_object_for_the_same_version_is_a_conflict(
    world: World, operator: Any, tmp_path: Path
) -> None:
    east = world.region("east", world.rest[:1])
    world.parents(east)
    image = build_image(tmp_path / "v1", size=1 << 20, layers=1, seed=21)
    run(_push(world.source, image, "1.0.0"))
    world.version("first", "1.0.0", [{"name": east}])
    world.wait_state("first", "Completed")
    world.version("second", "1.0.0", [{"name": east}])

    def conflict() -> dict[str, Any] | None:
        conditions = {c["type"]: c for c in world.status("second").get("conditions") or []}
        ready = conditions.get("Ready") or {}
        return ready if ready.get("reason") == "Conflict" else None

    ready = wait_for(conflict, timeout=30, description="the second object to be a Conflict")
    assert ready["status"] == "False" and '"first"' in ready["message"]
    assert "replicationStatus" not in world.status("second")


def test_no_status_write_is_refused_and_none_comes_before_the_finalizer(
    world: World, operator: Any, control_plane: Any, tmp_path: Path
) -> None:
    """Each status write carries the resourceVersion last seen (so that another writer's
    condition is never lost). kopf patches a new version twice (its finalizer, its diff
    base) while the first pass starts: a pass that wrote before then would be refused
    (409) and would copy replicas that a deletion in that moment would leave behind.
    So no write is refused, and the watch shows the finalizer on every status the
    passes wrote."""
    east = world.region("east", world.rest[:1])
    world.parents(east)
    names = [f"os-1-0-{i}" for i in range(4)]
    for i, name in enumerate(names):
        image = build_image(tmp_path / name, size=1 << 20, layers=1, seed=40 + i)
        run(_push(world.source, image, f"1.0.{i}"))
    seen: list[tuple[str, list[str], bool]] = []
    stop = threading.Event()

    def record() -> None:
        client = Client(KubeConfig.from_file(control_plane.kubeconfig), trust_env=False)
        try:
            for _, version in client.watch(
                ImageVersion, namespace=world.namespace, server_timeout=60
            ):
                if stop.is_set():
                    return
                status = version.get("status") or {}
                seen.append(
                    (
                        version.metadata.name,
                        list(version.metadata.finalizers or []),
                        "replicationStatus" in status,
                    )
                )
        except Exception as error:  # the namespace's teardown ends the watch
            if not stop.is_set():
                seen.append(("(the watch failed)", [repr(error)], True))

    watcher = threading.Thread(target=record, daemon=True)
    watcher.start()
    before = control_plane.requests_served()
    for i, name in enumerate(names):
        world.version(name, f"1.0.{i}", [{"name": east}])
    for name in names:
        world.wait_state(name, "Completed")
    wait_for(
        lambda: {n for n, _, replicated in seen if replicated} == set(names),
        timeout=30,
        description="the watch delivered every version's replication status",
    )
    after = control_plane.requests_served()
    stop.set()
    refused = after.get(("PATCH", "imageversions", "409"), 0.0) - before.get(
        ("PATCH", "imageversions", "409"), 0.0
    )
    assert refused == 0
    early = [(n, f) for n, f, replicated in seen if replicated and FINALIZER not in f]
    assert early == []
