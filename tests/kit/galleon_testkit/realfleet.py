# mypy: disable-error-code="union-attr,arg-type,index"
# (test probes read typed lightkube objects whose fields are all Optional)
"""A ScaleSet test's world on a real node: runnable OS images (`osimages`) published
through a real gallery to a region whose two registry replicas log every request, and
instances that really run on the session's real node (`realnode`).

Example:
    fleet = RealFleet(kube, namespace, registry_factory(3, access_log=True), real_node, tmp)
    fleet.publish("1.0.0")
    fleet.scaleset("web", 2)
    fleet.wait_fleet("web", "1.0.0", 2)
    fleet.get(fleet.pods("web")[0], "/cgi-bin/version")   # "1.0.0", over the pod IP
"""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path
from typing import Any

from lightkube import Client, codecs
from lightkube.resources.core_v1 import PersistentVolumeClaim, Pod

from galleon.kube.resources import ScaleSet
from galleon.oci import RegistryClient
from galleon_testkit.controlplane import REAL_STORAGE_CLASS
from galleon_testkit.fleets import ready
from galleon_testkit.images import TestImage, push_image
from galleon_testkit.osimages import HEALTH_PATH, PORT, build_os_image
from galleon_testkit.realnode import REAL_NODE_LABEL, TOLERATION, RealNode
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import wait_for
from galleon_testkit.world import World

SCALESET_LABEL = "galleon.dev/scaleset"
VERSION_LABEL = "galleon.dev/version"
#: On two busy cores a new instance is Ready in seconds (the image is small and local),
#: but the first of a run also creates the node's bridge: a generous health timeout.
HEALTH_TIMEOUT = "PT30S"


class RealFleet:
    """Regions, gallery and versions for one real-node test, and probes of its instances."""

    def __init__(
        self, kube: Client, namespace: str, registries: list[Registry], node: RealNode, folder: Path
    ) -> None:
        assert len(registries) == 3, "a source and two replicas"
        self.kube: Any = kube
        self.namespace = namespace
        self.node = node
        self.folder = folder
        self.world = World(kube, namespace, registries)
        self.source, *self.replicas = registries
        for registry in registries:
            node.trust(registry.host)
        self.region = self.world.region(
            "real", self.replicas, node_region=node.region, node_labels={REAL_NODE_LABEL: "true"}
        )
        self.world.parents(self.region)
        self.images: dict[str, TestImage] = {}

    # -- versions ------------------------------------------------------------------------

    def publish(self, version: str, *, healthy: bool = True, timeout: float = 120) -> str:
        """Build and push OS image `version`, publish it to the region (2 replicas) and
        wait until it is replicated; return its digest."""
        image = build_os_image(self.folder / f"os-{version}", version, healthy=healthy)
        self.images[version] = image

        async def push() -> str:
            async with RegistryClient(self.source.url) as client:
                return await push_image(client, "sources/os", image, [version])

        asyncio.run(push())
        name = "os-" + version.replace(".", "-")
        self.world.version(name, version, [{"name": self.region, "regionalReplicaCount": 2}])
        self.world.wait_state(name, "Completed", timeout=timeout)
        return image.manifest.digest

    def digest(self, version: str) -> str:
        return self.images[version].manifest.digest

    # -- scale sets ----------------------------------------------------------------------

    def scaleset(
        self,
        name: str,
        capacity: int,
        *,
        pull_policy: str = "IfNotPresent",
        extension: bool = True,
        os_image_update: str = "Recreate",
        **rolling: Any,
    ) -> None:
        """A ScaleSet on the real node: the OS container serves the image's health
        endpoint, an extension (init container on the OS image) runs before it unless
        `extension` is False, and one data disk is a local volume of the node.
        `pull_policy: Always` makes every instance ask its replica (containerd pulls a
        reference once otherwise); `os_image_update` is upgradePolicy.osImageUpdate."""
        policy = {
            "maxBatchInstancePercent": 50,
            "maxUnhealthyInstancePercent": 50,
            "maxUnhealthyUpgradedInstancePercent": 20,
            "upgradedInstanceHealthTimeout": HEALTH_TIMEOUT,
            **rolling,
        }
        disk = {"name": "data", "lun": 0, "diskSizeGB": 1, "storageClassName": REAL_STORAGE_CLASS}
        document = {
            "apiVersion": "galleon.dev/v1alpha1",
            "kind": "ScaleSet",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "region": self.region,
                "capacity": capacity,
                "imageReference": {"imageDefinitionName": "os", "version": "latest"},
                "osContainerName": "os",
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "tolerations": [TOLERATION],
                        "terminationGracePeriodSeconds": 5,
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "initContainers": [
                            {
                                "name": "extension",
                                "image": "set-by-galleon",
                                "args": ["extension"],
                                "volumeMounts": [{"name": "disk-data", "mountPath": "/data/data"}],
                            }
                        ]
                        if extension
                        else [],
                        "containers": [
                            {
                                "name": "os",
                                "image": "set-by-galleon",
                                "imagePullPolicy": pull_policy,
                                "ports": [{"containerPort": PORT}],
                                "readinessProbe": {
                                    "httpGet": {"path": HEALTH_PATH, "port": PORT},
                                    "periodSeconds": 1,
                                    "failureThreshold": 1,
                                    "timeoutSeconds": 2,
                                },
                            }
                        ],
                    },
                },
                "dataDisks": [disk],
                "upgradePolicy": {
                    "mode": "Rolling",
                    "osImageUpdate": os_image_update,
                    "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True},
                    "rollingUpgradePolicy": policy,
                },
            },
        }
        self.kube.apply(codecs.from_dict(document), force=True)

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.kube.get(ScaleSet, name, namespace=self.namespace).get("status") or {})

    def pods(self, name: str) -> list[Pod]:
        found = self.kube.list(Pod, namespace=self.namespace, labels={SCALESET_LABEL: name})
        return sorted(
            (p for p in found if p.metadata.deletionTimestamp is None),
            key=lambda p: int(p.metadata.labels["galleon.dev/index"]),
        )

    def claims(self, name: str) -> dict[str, str]:
        found = self.kube.list(
            PersistentVolumeClaim, namespace=self.namespace, labels={SCALESET_LABEL: name}
        )
        return {c.metadata.name: c.metadata.uid for c in found}

    def wait_fleet(self, name: str, version: str, capacity: int, timeout: float = 180) -> None:
        def settled() -> bool:
            pods = self.pods(name)
            return len(pods) == capacity and all(
                p.metadata.labels.get(VERSION_LABEL) == version and ready(p) for p in pods
            )

        wait_for(
            settled,
            timeout=timeout,
            description=f"{capacity} Ready instances of {name} on {version}",
        )

    def wait_upgrade(self, name: str, code: str, timeout: float = 240) -> dict[str, Any]:
        def ended() -> dict[str, Any]:
            status = self.status(name)
            upgrade = status.get("rollingUpgrade") or {}
            running = upgrade.get("runningStatus") or {}
            return status if running.get("code") == code and upgrade.get("phase") == "Done" else {}

        return wait_for(ended, timeout=timeout, description=f"the upgrade of {name} to end {code}")

    # -- what runs -----------------------------------------------------------------------

    @staticmethod
    def get(pod: Pod, path: str, timeout: float = 5.0) -> str:
        """GET `path` from the instance over its pod IP (through the node's bridge)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://{pod.status.podIP}:{PORT}{path}", timeout=timeout) as response:
            return str(response.read().decode())

    @staticmethod
    def image_id(pod: Pod, container: str = "os") -> str:
        """The digest the node reports the container runs (`status.containerStatuses[].imageID`)."""
        statuses = [
            *(pod.status.containerStatuses or []),
            *(pod.status.initContainerStatuses or []),
        ]
        found = next(s for s in statuses if s.name == container)
        return str(found.imageID).rsplit("@", 1)[-1]

    def log(self, pod: Pod, container: str) -> str:
        return "".join(
            self.kube.log(pod.metadata.name, namespace=self.namespace, container=container)
        )

    @staticmethod
    def pulls(registry: Registry, digest: str) -> int:
        """Image pulls of `digest` that `registry` answered containerd: each pull resolves
        the reference with one HEAD of the manifest, and GETs it only when the bytes are
        not on the node yet (a second replica's reference of the same digest is one
        HEAD)."""
        return sum(
            1
            for entry in registry.requests()
            if entry.method == "HEAD"
            and entry.path.endswith(f"/manifests/{digest}")
            and entry.agent.startswith("containerd")
            and entry.status == 200
        )

    def cleanup(self) -> None:
        for scaleset in self.kube.list(ScaleSet, namespace=self.namespace):
            self.kube.delete(ScaleSet, scaleset.metadata.name, namespace=self.namespace)
        self.world.cleanup()
