# mypy: disable-error-code="union-attr,arg-type,index"
# (test probes read typed lightkube objects whose fields are all Optional)
"""A ScaleSet test's world and probes: `FleetHarness` (regions on the session's kwok
nodes, versions of one image, helpers to create, patch and read ScaleSets) and
`Watcher` (a thread recording the most instances unavailable at once, pod UIDs per
index and version, and data disk UIDs).

Example:
    fleet = FleetHarness(World(kube, ns, registry_factory(4)), images, control_plane.client)
    fleet.publish("1.0.0", [fleet.east])
    fleet.scaleset("web", 10)
    fleet.wait_fleet("web", "1.0.0", 10)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightkube import Client, codecs
from lightkube.resources.core_v1 import Event, PersistentVolumeClaim, Pod
from lightkube.types import PatchType

from galleon.kube.resources import ScaleSet
from galleon.oci import RegistryClient
from galleon_testkit.images import TestImage, build_image, push_image
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import wait_for
from galleon_testkit.world import World

SCALESET_LABEL = "galleon.dev/scaleset"


async def push_source(registry: Registry, image: TestImage, tag: str) -> str:
    async with RegistryClient(registry.url) as client:
        return await push_image(client, "sources/os", image, [tag])


class FleetHarness:
    """A test harness for ScaleSets: the test's world (regions, versions of one image)
    plus helpers to create, patch and read ScaleSets and wait for their instances."""

    def __init__(
        self, world: World, images: dict[str, TestImage], new_client: Callable[[], Client]
    ) -> None:
        self.world, self.images, self.new_client = world, images, new_client
        self.kube: Any = world.kube
        self.namespace = world.namespace
        self.east = world.region("east", world.rest[:2], node_region="eastus2")
        self.west = world.region("west", world.rest[2:3], node_region="westcentralus")
        world.parents(self.west)

    @classmethod
    def with_versions(
        cls,
        world: World,
        folder: Path,
        new_client: Callable[[], Client],
        versions: tuple[str, ...] = ("1.0.0", "1.0.2", "1.0.3"),
    ) -> FleetHarness:
        """A fleet whose source registry holds `versions` of one image: the first a
        1 MiB image in 2 layers, each later one a patch release sharing all but the
        last layer (so their digests differ)."""
        base = build_image(folder / versions[0], size=1 << 20, layers=2, seed=1)
        images = {versions[0]: base}
        for seed, version in enumerate(versions[1:], start=2):
            images[version] = build_image(folder / version, size=0, layers=0, seed=seed, base=base)
        for version, image in images.items():
            asyncio.run(push_source(world.source, image, version))
        return cls(world, images, new_client)

    def publish(self, version: str, regions: list[str], wait: bool = True) -> None:
        name = "os-" + version.replace(".", "-")
        targets = [{"name": r, "regionalReplicaCount": 2 if r == self.east else 1} for r in regions]
        self.world.version(name, version, targets)
        if wait:
            self.world.wait_state(name, "Completed", timeout=90)

    def scaleset(self, name: str, capacity: int, **spec: Any) -> None:
        self.kube.apply(
            codecs.from_dict(self.scaleset_document(name, capacity, **spec)), force=True
        )

    def scaleset_document(self, name: str, capacity: int, **spec: Any) -> dict[str, Any]:
        """The ScaleSet `scaleset` applies: 20% batches, one data disk, latest version."""
        template_annotations = spec.pop("annotations", {"galleon.test/ready-delay": "1s"})
        rolling = {
            "maxBatchInstancePercent": 20,
            "maxUnhealthyInstancePercent": 20,
            "maxUnhealthyUpgradedInstancePercent": 20,
            "upgradedInstanceHealthTimeout": "PT8S",
            **spec.pop("rolling", {}),
        }
        document = {
            "apiVersion": "galleon.dev/v1alpha1",
            "kind": "ScaleSet",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "region": self.east,
                "capacity": capacity,
                "imageReference": {"imageDefinitionName": "os", "version": "latest"},
                "osContainerName": "os",
                "template": {
                    "metadata": {"labels": {"app": name}, "annotations": template_annotations},
                    "spec": {
                        "containers": [
                            {
                                "name": "os",
                                "image": "set-by-galleon",
                                "readinessProbe": {"httpGet": {"path": "/", "port": 8080}},
                            }
                        ]
                    },
                },
                "dataDisks": [{"name": "data", "lun": 0, "diskSizeGB": 1}],
                "upgradePolicy": {
                    "mode": "Rolling",
                    "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True},
                    "rollingUpgradePolicy": rolling,
                },
                **spec,
            },
        }
        return document

    def patch(self, name: str, patch: dict[str, Any]) -> None:
        self.kube.patch(ScaleSet, name, patch, namespace=self.namespace, patch_type=PatchType.MERGE)

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.kube.get(ScaleSet, name, namespace=self.namespace).get("status") or {})

    def pods(self, name: str) -> list[Pod]:
        return list(self.kube.list(Pod, namespace=self.namespace, labels={SCALESET_LABEL: name}))

    def claims(self, name: str) -> dict[str, str]:
        return {
            c.metadata.name: c.metadata.uid
            for c in self.kube.list(
                PersistentVolumeClaim, namespace=self.namespace, labels={SCALESET_LABEL: name}
            )
        }

    def wait_fleet(self, name: str, version: str, capacity: int, timeout: float = 90) -> None:
        def settled() -> bool:
            pods = [p for p in self.pods(name) if p.metadata.deletionTimestamp is None]
            return len(pods) == capacity and all(
                p.metadata.labels.get("galleon.dev/version") == version and ready(p) for p in pods
            )

        wait_for(settled, timeout=timeout, description=f"{capacity} Ready instances on {version}")

    def wait_upgrade(self, name: str, code: str, timeout: float = 120) -> dict[str, Any]:
        def ended() -> dict[str, Any]:
            status = self.status(name)
            upgrade = status.get("rollingUpgrade") or {}
            running = upgrade.get("runningStatus") or {}
            return status if running.get("code") == code and upgrade.get("phase") == "Done" else {}

        return wait_for(ended, timeout=timeout, description=f"upgrade of {name} to end {code}")

    def events(self, name: str, reason: str) -> list[str]:
        return [
            e.message or ""
            for e in self.kube.list(
                Event,
                namespace=self.namespace,
                fields={"involvedObject.name": name, "reason": reason},
            )
        ]

    def digest(self, version: str) -> str:
        return self.images[version].manifest.digest


def ready(pod: Pod) -> bool:
    return (
        any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
        and pod.metadata.deletionTimestamp is None
    )


class Watcher:
    """Polls a ScaleSet's instances in a thread: the most unavailable at once, the
    pod UIDs seen per index and version, and every data disk's UID."""

    def __init__(self, fleet: FleetHarness, name: str, capacity: int) -> None:
        self.fleet, self.name, self.capacity = fleet, name, capacity
        self.max_unavailable = 0
        self.uids: dict[tuple[int, str], set[str]] = {}
        self.claims: dict[str, set[str]] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        client = self.fleet.new_client()
        while not self._stop.is_set():
            pods = list(
                client.list(Pod, namespace=self.fleet.namespace, labels={SCALESET_LABEL: self.name})
            )
            available = sum(1 for p in pods if ready(p))
            self.max_unavailable = max(self.max_unavailable, self.capacity - available)
            for p in pods:
                key = (
                    int(p.metadata.labels["galleon.dev/index"]),
                    p.metadata.labels["galleon.dev/version"],
                )
                self.uids.setdefault(key, set()).add(p.metadata.uid)
            for claim in client.list(
                PersistentVolumeClaim,
                namespace=self.fleet.namespace,
                labels={SCALESET_LABEL: self.name},
            ):
                self.claims.setdefault(claim.metadata.name, set()).add(claim.metadata.uid)
            self.samples += 1
            time.sleep(0.1)
