"""A ScaleSet's world as the API returns it (dicts), turned into what the planners take.

Rules of this module: pure conversions from API objects (dicts, camelCase) to the
core's models, shared by the ScaleSet controller's pass
(`galleon.controllers.scaleset.snapshot`) and by `kubectl galleon plan`, so both
see a pod, a recorded rollout, a version and the target revision the same way.
No I/O and no clock: a function that needs the time takes `now`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from galleon.api.region import RegistryEndpoint
from galleon.api.scaleset import ScaleSetSpec
from galleon.core import deferral, inplace, times
from galleon.core import instances as inst
from galleon.core import rollout as ro
from galleon.core.upgrade_trigger import RecordedUpgrade
from galleon.core.versions import RegionFacts, Released, Resolution, VersionFacts


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


def observe(pod: Mapping[str, Any]) -> ro.Instance | None:
    """A pod (as a dict) as the planner sees it (None when it is not one of ours).

    >>> pod = {"metadata": {"labels": {"galleon.dev/index": "3",
    ...                                "galleon.dev/revision": "1.0.0-ab"},
    ...                     "creationTimestamp": "2026-12-02T18:00:00Z"},
    ...        "status": {"conditions": [{"type": "Ready", "status": "True",
    ...                                   "lastTransitionTime": "2026-12-02T18:00:05Z"}]}}
    >>> seen = observe(pod)
    >>> seen.index, seen.revision, seen.ready, f"{seen.ready_since:%H:%M:%S}"
    (3, '1.0.0-ab', True, '18:00:05')
    >>> observe({"metadata": {"labels": {}}}) is None
    True
    """
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
    if ready and inplace.updating(pod):
        ready, ready_since = False, None  # the old container still reports Ready
    annotations = meta.get("annotations") or {}
    return ro.Instance(
        index=index,
        revision=labels.get(inst.REVISION_LABEL),
        exists=True,
        ready=ready,
        ready_since=ready_since,
        created=times.parse(meta.get("creationTimestamp")),
        deleting=meta.get("deletionTimestamp") is not None,
        failed=status.get("phase") in ("Failed", "Succeeded"),
        upgrade_notice=deferral.read_notice(annotations),
        approved=deferral.approved(annotations),
    )


POD_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "labels",
    "annotations",
    "creationTimestamp",
    "deletionTimestamp",
)


def slim(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a pod a ScaleSet pass reads (`observe`, pre-pull's nodes, the
    deferral notices and the claims' names), and nothing else: a pod as listed is
    mostly managedFields, its spec and its container statuses, about 25 KiB as a dict,
    and a fleet's passes hold their pods at the same time.

    >>> pod = {"metadata": {"name": "web-0", "uid": "u", "managedFields": [{}]},
    ...        "spec": {"nodeName": "n1", "containers": [{"name": "os"}]},
    ...        "status": {"phase": "Running", "containerStatuses": [{}],
    ...                   "conditions": [{"type": "Ready", "status": "True"},
    ...                                  {"type": "PodScheduled", "status": "True"}]}}
    >>> kept = slim(pod)
    >>> kept["metadata"], kept["spec"]
    ({'name': 'web-0', 'uid': 'u'}, {'nodeName': 'n1'})
    >>> kept["status"]["conditions"]
    [{'type': 'Ready', 'status': 'True'}]
    >>> observe(slim(pod)) == observe(pod)
    True
    """
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    kept: dict[str, Any] = {
        "metadata": {k: meta[k] for k in POD_METADATA if k in meta},
        "spec": {"nodeName": spec["nodeName"]} if "nodeName" in spec else {},
        "status": {},
    }
    if "phase" in status:
        kept["status"]["phase"] = status["phase"]
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    if ready:
        kept["status"]["conditions"] = ready
    if status.get("containerStatuses"):
        kept["status"]["containerStatuses"] = inplace.slim_statuses(status["containerStatuses"])
    return kept


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


def version_facts(obj: Mapping[str, Any]) -> VersionFacts:
    """What the "latest" rule needs from an ImageVersion object (a dict).

    >>> facts = version_facts({
    ...     "spec": {"version": "1.0.1", "publishingProfile": {"targetRegions": [
    ...         {"name": "east"}, {"name": "west", "excludeFromLatest": True}]}},
    ...     "status": {"replicationStatus": {"summary": [
    ...         {"region": "east", "state": "Completed"}, {"region": "west"}]}}})
    >>> facts.version, facts.regions["east"].completed, facts.regions["west"]
    ('1.0.1', True, RegionFacts(completed=False, excluded_from_latest=True))
    """
    spec = obj.get("spec") or {}
    profile = spec.get("publishingProfile") or {}
    excluded_regions = {
        t.get("name"): bool(t.get("excludeFromLatest")) for t in profile.get("targetRegions") or []
    }
    summary = ((obj.get("status") or {}).get("replicationStatus") or {}).get("summary") or []
    regions = {
        s["region"]: RegionFacts(
            completed=s.get("state") == "Completed",
            excluded_from_latest=excluded_regions.get(s["region"], False),
        )
        for s in summary
        if s.get("region") in excluded_regions
    }
    return VersionFacts(
        version=spec.get("version", "0.0.0"),
        excluded_from_latest=bool(profile.get("excludeFromLatest")),
        deleting=bool((obj.get("metadata") or {}).get("deletionTimestamp")),
        regions=regions,
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
        completed = [r for r in (line or {}).get("replicas") or [] if r.get("state") == "Completed"]
        # A retained copy (no longer wanted, kept while pulled) takes no new instance,
        # unless it is the only one left.
        done = {r.get("registry") for r in completed if not r.get("retained")} or {
            r.get("registry") for r in completed
        }
        chosen = tuple(e for e in endpoints if e.name in done and e.name in by_name)
        if chosen:
            images[obj["spec"]["version"]] = VersionImage(repository, digest, chosen)
    return images


def quarantine_reason(entry: Mapping[str, Any], namespace: str) -> str:
    """Why a version is quarantined, as a ScaleSet in `namespace` is told: the ScaleSet
    that faulted and its fault are named only to its own namespace (another tenant's
    names and messages never reach it).

    >>> entry = {"scaleSet": "team-b/api", "message": "3 of 4 unhealthy"}
    >>> print(quarantine_reason(entry, "team-b")); print(quarantine_reason(entry, "team-a"))
    scaleset team-b/api faulted: 3 of 4 unhealthy
    an upgrade in another namespace faulted
    """
    scale_set = str(entry.get("scaleSet") or "")
    if scale_set.split("/", 1)[0] != namespace:
        return "an upgrade in another namespace faulted"
    return f"scaleset {scale_set} faulted: {entry.get('message', '')}"


def release_of(
    definition: Mapping[str, Any] | None, region: str, namespace: str
) -> tuple[dict[str, str], Released | None]:
    """(quarantined version → why, what the release waves allow in `region` (None: no
    waves)), from the ImageDefinition's status (`galleon.core.waves` decides it there),
    as a ScaleSet in `namespace` may be told.

    >>> release_of({"status": {"quarantinedVersions": [
    ...     {"version": "1.0.2", "scaleSet": "a/web", "message": "2 of 2 unhealthy"}]}},
    ...     "east", "a")
    ({'1.0.2': 'scaleset a/web faulted: 2 of 2 unhealthy'}, None)
    """
    status = (definition or {}).get("status") or {}
    quarantined = {
        q["version"]: quarantine_reason(q, namespace)
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


def target_revision(
    namespace: str,
    spec: ScaleSetSpec,
    resolution: Resolution | None,
    images: Mapping[str, VersionImage] | None,
) -> str | None:
    """The target revision of a ScaleSet in `namespace`, when the version it resolves
    to has a completed copy in its region (None: no Region, no version, no copy)."""
    if resolution is None or images is None:
        return None
    version = resolution.target
    if not version or version not in images:
        return None
    image = inst.image_identity(
        definition_namespace(namespace, spec), spec.image_reference.image_definition_name
    )
    return inst.revision(version, inst.model_hash(spec, image))
