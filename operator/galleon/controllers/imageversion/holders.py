"""Who still holds a version's copies: read live, for removal and deletion.

Rules of this module (the counting itself is `galleon.core.references`):
- Read live (LIST), never from the watch-fed indexes: a ScaleSet, pod or version
  that appeared a moment ago must hold a copy (a stale answer deletes copies that
  pods pull).
- Every galleon instance (a pod with the ScaleSet label, any namespace) that pulls
  the copy holds it, whether its ScaleSet still follows the definition or not
  (switched definitions, revoked sharing: a running instance keeps running, as the
  cloud keeps existing VMs, so its image must stay). The holders are named in the
  version's status, so a publisher sees who keeps a copy.
- Other versions count by their status: a Completed replica at the same host, of
  the same repository and digest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lightkube import ALL_NS
from lightkube.operators import exists
from lightkube.resources.core_v1 import Pod

from galleon.controllers.common import as_dict
from galleon.controllers.imageversion.apply import RegionInfo
from galleon.core import instances as inst
from galleon.core import references
from galleon.core.replication import Location
from galleon.kube import client as kube
from galleon.kube.resources import ImageVersion, ScaleSet


async def followers(namespace: str, definition: str) -> list[dict[str, Any]]:
    """The ScaleSets (any namespace) whose imageReference is `namespace/definition`."""
    found = []
    async for obj in kube.client().list(ScaleSet, namespace=ALL_NS):
        s = as_dict(obj)
        reference = (s.get("spec") or {}).get("imageReference") or {}
        source = reference.get("namespace") or s["metadata"]["namespace"]
        if (source, reference.get("imageDefinitionName")) == (namespace, definition):
            found.append(s)
    return found


async def instance_pods(labels: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every galleon instance of any namespace (pods with the ScaleSet label, and
    `labels`)."""
    selector: dict[str, Any] = {inst.SCALESET_LABEL: exists(), **(labels or {})}
    return [as_dict(p) async for p in kube.client().list(Pod, namespace=ALL_NS, labels=selector)]


def region_hosts(regions: Mapping[str, RegionInfo]) -> dict[Location, str]:
    """Every Region registry's host, by location."""
    return {
        Location(name, e.name): inst.registry_host(e.url)
        for name, region in regions.items()
        for e in region.endpoints
    }


@dataclass(frozen=True)
class References:
    """What else references copies of one repository: instances and other versions."""

    pods: Mapping[references.Copy, Sequence[str]]
    versions: Mapping[references.Copy, Sequence[str]]
    hosts: Mapping[Location, str]


async def read_references(
    namespace: str, uid: str | None, regions: Mapping[str, RegionInfo]
) -> References:
    """Every instance's copies (any namespace), and the Completed replicas of the other
    versions of `namespace` (version `uid` excluded), read live."""
    hosts = region_hosts(regions)
    pods = references.pod_copies(await instance_pods())
    versions = [as_dict(v) async for v in kube.client().list(ImageVersion, namespace=namespace)]
    others = references.version_copies(
        (v for v in versions if v["metadata"].get("uid") != uid), hosts
    )
    return References(pods, others, hosts)
