"""What one ScaleSet pass observed, as one frozen snapshot.

Rules of this module: `read_snapshot` makes no request once the pod cache's watch is
synced: the pods come from the cache (`galleon.core.podcache`, fed by
`galleon.controllers.scaleset.follow`), and one LIST (its pods, by label) only while
it is not; the Region and the image definition's versions come from kopf indexes fed
by watches. Everything after it reads the snapshot only. The conversions from API
dicts to the planner's models (`observe`, `recorded_upgrade`, `version_images`,
`release_of`, `target_revision`) are pure and live in `galleon.core.observed`,
shared with `kubectl galleon plan`, so both see a ScaleSet's world the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from galleon import clock
from galleon.api.region import RegistryEndpoint, endpoints_of, node_selector
from galleon.api.scaleset import ScaleSetSpec
from galleon.controllers import sharing_check
from galleon.controllers.common import as_dict
from galleon.controllers.indexes import first
from galleon.core import instances as inst
from galleon.core import rollout as ro
from galleon.core.observed import (
    VersionImage,
    definition_namespace,
    observe,
    recorded_upgrade,
    release_of,
    slim,
    target_revision,
    version_facts,
    version_images,
)
from galleon.core.observed import load_rollout as load_rollout  # re-exported
from galleon.core.podcache import PodCache
from galleon.core.sharing import Sharing
from galleon.core.upgrade_trigger import Controls, RecordedUpgrade
from galleon.core.versions import Resolution, resolve
from galleon.kube import client as kube
from galleon.kube.resources import PodBody, ScaleSet


@dataclass(frozen=True)
class ScaleSetSnapshot:
    """One pass's observed world. Built by `read_snapshot`; never changed after."""

    body: Mapping[str, Any]
    """The ScaleSet as read (metadata, spec, status)."""
    spec: ScaleSetSpec
    now: datetime
    """The pass's one clock reading."""
    region: Mapping[str, Any] | None
    """The Region the ScaleSet names (None: it does not exist)."""
    endpoints: tuple[RegistryEndpoint, ...] = ()
    """The Region's registries, in its order (empty when the Region is missing)."""
    node_selector: Mapping[str, str] | None = None
    """Labels of the Region's nodes, merged into every pod's nodeSelector."""
    resolution: Resolution | None = None
    """Which version the ScaleSet should run in its region (None: no Region)."""
    images: Mapping[str, VersionImage] | None = None
    """Version → its completed copies in the region (versions without any left out)."""
    pods: tuple[Mapping[str, Any], ...] = ()
    """The ScaleSet's pods (by label), as dicts of what a pass reads of them
    (`galleon.core.observed.slim`)."""
    instances: tuple[ro.Instance, ...] = ()
    """The pods that are instances (a readable index label), as the planner sees them."""
    pod_uids: Mapping[int, str] | None = None
    """Index → UID of the instance's pod (deletes are preconditioned on it)."""
    sharing: Sharing | None = None
    """Whether the ScaleSet's namespace may use the image (None: no Region)."""
    quarantined: Mapping[str, str] | None = None
    """Quarantined version → why (from the definition's status)."""
    listed_at: float = 0.0
    """`clock.monotonic()` just before the pod LIST (this pass's, or the one the pod
    cache's watch goes on from) was sent: a pod created after it may be missing from
    `pods` without having gone, unless its UID is in `seen`."""
    seen: frozenset[str] = frozenset()
    """Pod UIDs delivered since the previous pass (the listed ones, after a LIST)."""
    listed: bool = False
    """Whether the pods were LISTed by this pass (one request) rather than read from the
    pod cache."""

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])

    @property
    def generation(self) -> int | None:
        return self.body["metadata"].get("generation")

    @property
    def status(self) -> Mapping[str, Any]:
        return self.body.get("status") or {}

    @property
    def controls(self) -> Controls:
        return Controls.from_annotations(self.body["metadata"].get("annotations") or {})

    @property
    def recorded(self) -> RecordedUpgrade:
        return recorded_upgrade(self.status, self.now)

    @property
    def target(self) -> str | None:
        """The target revision, when its version has a completed copy in the region."""
        return target_revision(self.namespace, self.spec, self.resolution, self.images)


class Sources:
    """The watch-fed indexes a snapshot reads Regions, ImageVersions, ImageDefinitions
    and Galleries from."""

    def __init__(
        self,
        versions: Mapping[Any, Any],
        regions: Mapping[Any, Any],
        definitions: Mapping[Any, Any] | None = None,
        galleries: Mapping[Any, Any] | None = None,
    ) -> None:
        self.versions, self.regions = versions, regions
        self.definitions, self.galleries = definitions or {}, galleries or {}

    def region(self, name: str) -> dict[str, Any] | None:
        return first(self.regions, name)

    def definition(self, namespace: str, name: str) -> dict[str, Any] | None:
        return first(self.definitions, (namespace, name))

    def gallery(self, namespace: str, name: str) -> dict[str, Any] | None:
        return first(self.galleries, (namespace, name))

    def definition_versions(self, namespace: str, definition: str) -> list[dict[str, Any]]:
        return [dict(v) for v in self.versions.get((namespace, definition), ())]


async def read_scaleset(namespace: str, name: str) -> dict[str, Any] | None:
    """The ScaleSet as stored now (None: gone)."""
    obj = await kube.get_or_none(ScaleSet, name, namespace)
    return as_dict(obj) if obj is not None else None


async def read_snapshot(
    body: Mapping[str, Any],
    spec: ScaleSetSpec,
    sources: Sources,
    now: datetime,
    cache: PodCache | None = None,
) -> ScaleSetSnapshot:
    """The world of one pass: the Region and versions from the indexes, the pods from
    the pod cache, or by LIST (one request) while the cache's watch is not synced."""
    region = sources.region(spec.region)
    if region is None:
        return ScaleSetSnapshot(body=body, spec=spec, now=now, region=None)
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    found = await read_sharing(namespace, spec, sources)
    region_spec = region.get("spec") or {}
    endpoints, _ = endpoints_of(region_spec)  # the Region reports the others
    versions = (
        sources.definition_versions(
            definition_namespace(namespace, spec), spec.image_reference.image_definition_name
        )
        if found.allowed
        else []
    )
    quarantined, released = release_of(
        sources.definition(
            definition_namespace(namespace, spec), spec.image_reference.image_definition_name
        ),
        spec.region,
        namespace,
    )
    view = cache.view(namespace, name) if cache is not None else None
    if view is not None:
        pods, listed_at, seen, listed = view.pods, view.synced_at, view.seen, False
        observed = view.instances
    else:
        listed_at = clock.monotonic()
        pods = tuple(
            [
                slim(p)
                async for p in kube.client().list(
                    PodBody, namespace=namespace, labels={inst.SCALESET_LABEL: name}
                )
            ]
        )
        seen, listed = frozenset(p["metadata"].get("uid") for p in pods), True
        observed = tuple(observe(p) for p in pods)
    instances, uids = [], {}
    for pod, instance in zip(pods, observed, strict=True):
        if instance is not None:
            instances.append(instance)
            uids[instance.index] = pod["metadata"]["uid"]
    return ScaleSetSnapshot(
        body=body,
        spec=spec,
        now=now,
        region=region,
        endpoints=endpoints,
        node_selector=node_selector(region_spec, spec.region),
        resolution=resolve(
            [version_facts(v) for v in versions],
            spec.region,
            spec.image_reference.version,
            quarantined,
            released,
        ),
        quarantined=quarantined,
        images=version_images(versions, spec.region, endpoints),
        pods=pods,
        instances=tuple(instances),
        pod_uids=uids,
        sharing=found,
        listed_at=listed_at,
        seen=seen,
        listed=listed,
    )


async def read_sharing(namespace: str, spec: ScaleSetSpec, sources: Sources) -> Sharing:
    """Whether `namespace` may use the image: from the indexes, plus a GET of the
    Namespace only when the Gallery selects namespaces by label
    (`galleon.controllers.sharing_check`)."""
    return await sharing_check.read_sharing(
        namespace,
        definition_namespace(namespace, spec),
        spec.image_reference.image_definition_name,
        sources,
    )
