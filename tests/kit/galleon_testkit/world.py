"""A test's own galleon world: Regions named after the test, a Gallery, an
ImageDefinition and ImageVersions whose sources are images pushed to a real registry.

Example:
    world = World(kube, namespace, registry_factory(3))
    east = world.region("east", world.rest[:2], node_region="eastus2")
    world.parents(east)
    world.version("os-1-0-0", "1.0.0", [{"name": east}])
    world.wait_state("os-1-0-0", "Completed")
"""

from __future__ import annotations

import contextlib
from typing import Any

from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError

from galleon.kube.resources import ImageVersion, Region
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import wait_for


def _object(document: dict[str, Any]) -> Any:
    return codecs.from_dict(document)


class World:
    """Regions, gallery and definition for one test, and helpers to read status."""

    def __init__(self, kube: Client, namespace: str, registries: list[Registry]) -> None:
        self.kube: Any = kube
        self.namespace = namespace
        self.source = registries[0]
        self.regions: dict[str, list[Registry]] = {}
        self.rest = registries[1:]

    def region(
        self,
        short: str,
        registries: list[Registry],
        node_region: str | None = None,
        node_labels: dict[str, str] | None = None,
        replication: dict[str, Any] | None = None,
    ) -> str:
        """A Region named after the test; `node_region` selects the session's kwok
        nodes of that region (topology.kubernetes.io/region) for its instances, and
        `node_labels` narrows that further (e.g. to the real node); `replication` is
        its `spec.replication` (e.g. `{"copiedBy": "RegionAgent"}`)."""
        name = f"{self.namespace}-{short}"[:63]
        selector = {"topology.kubernetes.io/region": node_region} if node_region else {}
        selector.update(node_labels or {})
        self.regions[name] = registries
        self.kube.apply(
            _object(
                {
                    "apiVersion": "galleon.dev/v1alpha1",
                    "kind": "Region",
                    "metadata": {"name": name},
                    "spec": {
                        "nodeSelector": selector,
                        "registries": [
                            {"name": f"r{i}", "url": r.url} for i, r in enumerate(registries)
                        ],
                        **({"replication": replication} if replication else {}),
                    },
                }
            ),
            force=True,
        )
        return name

    def parents(self, home: str) -> None:
        for document in (
            {
                "kind": "Gallery",
                "metadata": {"name": "gallery"},
                "spec": {"location": home},
            },
            {
                "kind": "ImageDefinition",
                "metadata": {"name": "os"},
                "spec": {
                    "galleryName": "gallery",
                    "identifier": {"publisher": "galleon", "offer": "test", "sku": "os"},
                    "osType": "Linux",
                },
            },
        ):
            document["apiVersion"] = "galleon.dev/v1alpha1"
            self.kube.apply(_object(document), namespace=self.namespace, force=True)

    def version(self, name: str, version: str, targets: list[dict[str, Any]], **extra: Any) -> None:
        self.kube.apply(
            _object(
                {
                    "apiVersion": "galleon.dev/v1alpha1",
                    "kind": "ImageVersion",
                    "metadata": {"name": name},
                    "spec": {
                        "imageDefinitionName": "os",
                        "version": version,
                        "source": {
                            "image": f"{self.source.host}/sources/os:{version}",
                            "plainHTTP": True,
                        },
                        "publishingProfile": {"targetRegions": targets, **extra},
                    },
                }
            ),
            namespace=self.namespace,
            force=True,
        )

    def status(self, name: str) -> dict[str, Any]:
        obj = self.kube.get(ImageVersion, name, namespace=self.namespace)
        return dict(obj.get("status") or {})

    def region_line(self, name: str, region: str) -> dict[str, Any]:
        summary = (self.status(name).get("replicationStatus") or {}).get("summary") or []
        return next((s for s in summary if s["region"] == region), {})

    def wait_state(self, name: str, state: str, timeout: float = 60) -> dict[str, Any]:
        def reached() -> dict[str, Any]:
            status = self.status(name)
            aggregated = (status.get("replicationStatus") or {}).get("aggregatedState")
            return status if aggregated == state else {}

        return wait_for(reached, timeout=timeout, description=f"{name} to be {state}")

    def cleanup(self) -> None:
        for name in self.regions:
            with contextlib.suppress(ApiError):
                self.kube.delete(Region, name)
