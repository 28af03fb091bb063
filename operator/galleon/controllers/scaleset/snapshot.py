"""What one ScaleSet pass observed, as one frozen snapshot.

Rules of this module: `read_snapshot` makes one GET (the ScaleSet: its status is
the rollout's record) and one LIST (its pods, by label); the Region and the
image definition's versions come from kopf indexes fed by watches, with no
request. Everything after it reads the snapshot only. The conversions from API
dicts to the planner's models (`observe`, `recorded_upgrade`, `version_images`)
are pure, and so testable without a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lightkube.resources.core_v1 import Pod

from galleon import clock
from galleon.api.region import RegistryEndpoint, endpoints_of, node_selector
from galleon.api.scaleset import ScaleSetSpec
from galleon.controllers import sharing_check
from galleon.controllers.common import as_dict, version_facts
from galleon.controllers.indexes import first
from galleon.core import instances as inst
from galleon.core import rollout as ro
from galleon.core import times
from galleon.core.sharing import Sharing
from galleon.core.upgrade_trigger import Controls, RecordedUpgrade
from galleon.core.versions import Released, Resolution, resolve
from galleon.kube import client as kube
from galleon.kube.resources import ScaleSet


@dataclass(frozen=True)
class VersionImage:
    """Where one version's copies are in the ScaleSet's region."""

    repository: str
    digest: str
    endpoints: tuple[RegistryEndpoint, ...]
    """The region's registries holding a completed copy, in the Region's order."""

    def image(self, index: int) -> tuple[str, str | None]:
        """(image reference by digest, pull Secret) for instance `index`: instances are
        spread over the copies by index."""
        endpoint = self.endpoints[index % len(self.endpoints)]
        hosts = [inst.registry_host(e.url) for e in self.endpoints]
        return inst.image_for(index, hosts, self.repository, self.digest), endpoint.pull_secret_name


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
    """The ScaleSet's pods (by label), as dicts."""
    instances: tuple[ro.Instance, ...] = ()
    """The pods that are instances (a readable index label), as the planner sees them."""
    pod_uids: Mapping[int, str] | None = None
    """Index → UID of the instance's pod (deletes are preconditioned on it)."""
    sharing: Sharing | None = None
    """Whether the ScaleSet's namespace may use the image (None: no Region)."""
    listed_at: float = 0.0
    """`clock.monotonic()` just before the pod LIST was sent: a pod created after it may
    be missing from `pods` without having gone."""

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
        if self.resolution is None or self.images is None:
            return None
        version = self.resolution.target
        if not version or version not in self.images:
            return None
        image = inst.image_identity(
            definition_namespace(self.namespace, self.spec),
            self.spec.image_reference.image_definition_name,
        )
        return inst.revision(version, inst.model_hash(self.spec, image))


def observe(pod: Mapping[str, Any]) -> ro.Instance | None:
    """A pod (as a dict) as the planner sees it (None when it is not one of ours)."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    try:
        index = int(labels.get(inst.INDEX_LABEL, ""))
    except ValueError:
        return None
    status = pod.get("status") or {}
    ready, ready_since = False, None
    for c in status.get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "True":
            ready, ready_since = True, times.parse(c.get("lastTransitionTime"))
    return ro.Instance(
        index=index,
        revision=labels.get(inst.REVISION_LABEL),
        exists=True,
        ready=ready,
        ready_since=ready_since,
        created=times.parse(meta.get("creationTimestamp")),
        deleting=meta.get("deletionTimestamp") is not None,
        failed=status.get("phase") in ("Failed", "Succeeded"),
    )


def load_rollout(status: Mapping[str, Any], now: datetime) -> ro.Rollout | None:
    """The rollout persisted in status.rollingUpgrade (None before the first one). A
    record without batchStartTime (an older galleon's) leaves `batch_since` None: the
    planner then counts the batch from phaseSince (`Rollout.batch_start`)."""
    upgrade = status.get("rollingUpgrade") or {}
    running = upgrade.get("runningStatus") or {}
    if not upgrade.get("toRevision") or not upgrade.get("phase"):
        return None
    error = upgrade.get("error") or {}
    return ro.Rollout(
        from_revision=upgrade.get("fromRevision"),
        to_revision=upgrade["toRevision"],
        started=times.parse(running.get("startTime")) or now,
        code=running.get("code", "RollingForward"),
        phase=upgrade["phase"],
        batch=upgrade.get("currentBatch") or 0,
        members=tuple(upgrade.get("batchInstances") or ()),
        phase_since=times.parse(upgrade.get("phaseSince")),
        upgraded=tuple(upgrade.get("upgradedInstances") or ()),
        failed=tuple(upgrade.get("failedInstances") or ()),
        rolled_back=tuple(upgrade.get("rolledBackInstances") or ()),
        error_code=error.get("code", ""),
        error_message=error.get("message", ""),
        cancel_requested=bool(upgrade.get("cancelRequested")),
        batch_since=times.parse(upgrade.get("batchStartTime")),
    )


def recorded_upgrade(status: Mapping[str, Any], now: datetime) -> RecordedUpgrade:
    """The upgrade as `status.rollingUpgrade` recorded it (a start time that is
    missing reads as `now`)."""
    upgrade = status.get("rollingUpgrade") or {}
    running = upgrade.get("runningStatus") or {}
    return RecordedUpgrade(
        rollout=load_rollout(status, now),
        started_by=upgrade.get("startedBy"),
        last_action=running.get("lastAction") or "Start",
        last_action_time=running.get("lastActionTime"),
    )


def version_images(
    versions: Sequence[Mapping[str, Any]], region: str, endpoints: Sequence[RegistryEndpoint]
) -> dict[str, VersionImage]:
    """Version → its completed copies in `region` (versions without any are left out)."""
    by_name = {e.name: e for e in endpoints}
    images: dict[str, VersionImage] = {}
    for obj in versions:
        status = obj.get("status") or {}
        repository, digest = status.get("repository"), status.get("sourceDigest")
        if not repository or not digest:
            continue
        summary = (status.get("replicationStatus") or {}).get("summary") or []
        line = next((s for s in summary if s.get("region") == region), None)
        completed = [
            r for r in (line or {}).get("replicas") or [] if r.get("state") == "Completed"
        ]
        # A retained copy (no longer wanted, kept while pulled) takes no new instance,
        # unless it is the only one left.
        done = {r.get("registry") for r in completed if not r.get("retained")} or {
            r.get("registry") for r in completed
        }
        chosen = tuple(e for e in endpoints if e.name in done and e.name in by_name)
        if chosen:
            images[obj["spec"]["version"]] = VersionImage(repository, digest, chosen)
    return images


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
    body: Mapping[str, Any], spec: ScaleSetSpec, sources: Sources, now: datetime
) -> ScaleSetSnapshot:
    """The world of one pass: the Region and versions from the indexes, the pods by
    LIST (one request)."""
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
    listed_at = clock.monotonic()
    pods = tuple(
        [
            as_dict(p)
            async for p in kube.client().list(
                Pod, namespace=namespace, labels={inst.SCALESET_LABEL: name}
            )
        ]
    )
    instances, uids = [], {}
    for pod in pods:
        instance = observe(pod)
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
            *release_of(
                sources.definition(
                    definition_namespace(namespace, spec),
                    spec.image_reference.image_definition_name,
                ),
                spec.region,
            ),
        ),
        images=version_images(versions, spec.region, endpoints),
        pods=pods,
        instances=tuple(instances),
        pod_uids=uids,
        sharing=found,
        listed_at=listed_at,
    )


def release_of(
    definition: Mapping[str, Any] | None, region: str
) -> tuple[dict[str, str], Released | None]:
    """(quarantined version → why, what the release waves allow in `region` (None: no
    waves)), from the ImageDefinition's status (`galleon.core.waves` decides it there)."""
    status = (definition or {}).get("status") or {}
    quarantined = {
        q["version"]: f"scaleset {q.get('scaleSet')} faulted: {q.get('message', '')}"
        for q in status.get("quarantinedVersions") or []
        if q.get("version")
    }
    if not ((definition or {}).get("spec") or {}).get("releasePolicy"):
        return quarantined, None
    line: Mapping[str, Any] = next(
        (r for r in status.get("latestVersionByRegion") or [] if r.get("region") == region), {}
    )
    return quarantined, Released(
        line.get("version"), line.get("pendingVersion"), line.get("message") or ""
    )


def definition_namespace(namespace: str, spec: ScaleSetSpec) -> str:
    """The namespace of the ImageDefinition a ScaleSet in `namespace` follows."""
    return spec.image_reference.namespace or namespace


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
