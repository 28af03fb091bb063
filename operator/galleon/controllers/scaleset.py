"""ScaleSet controller: keep `capacity` instances in the region, on the version they
follow, and roll newer versions out in batches with health gates and rollback.

Rules of this module:
- One kopf daemon per ScaleSet runs `Fleet.run_once` in a loop: read the ScaleSet
  (a GET: its status is the rollout's record), its Region and the image
  definition's versions (from kopf indexes fed by watches, no request), resolve
  the target version in
  the region (`galleon.core.versions.resolve`), list the instances (one LIST by
  label), ask the pure planner (`galleon.core.rollout.plan`) what to do, then
  write the status *before* acting on pods, so the batch being replaced is on
  record before any instance of it goes. A restarted operator reads that record
  and finishes the same batch; it never starts a second one early and never
  upgrades an instance recorded as upgraded.
- The daemon sleeps until an instance changes (pod watch), a version of the
  namespace changes, the ScaleSet's spec or control annotations change, or the
  planner's requeue time passes.
- When an upgrade may start (docs/rollout.md): a newer version reaching the
  region starts one when following "latest" with automatic OS upgrades on
  (Platform); a changed instance model or pinned version starts one in Rolling
  or Automatic mode (User); the `galleon.dev/start-upgrade` annotation starts
  one in any mode, even to a version that faulted before. Nothing is upgraded
  without a health source (a readiness probe on the OS container).
- A newer version arriving mid-upgrade waits: the running upgrade finishes to its
  own target first, then the next one starts from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import isodate
import kopf
from lightkube import codecs
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import PersistentVolumeClaim, Pod
from lightkube.types import PatchType

from galleon import GROUP, VERSION
from galleon.api.region import RegistryEndpoint
from galleon.api.scaleset import LATEST, MAX_UPGRADE_HISTORY, ScaleSetSpec
from galleon.controllers.common import (
    as_dict,
    conditions,
    kstatus,
    measured,
    rfc3339,
    utcnow,
    version_facts,
)
from galleon.core import conditions as cond
from galleon.core import instances as inst
from galleon.core import rollout as ro
from galleon.core.versions import Resolution, is_newer, resolve, version_key
from galleon.kube import client as kube
from galleon.kube.resources import ImageVersion, Region, ScaleSet
from galleon.metrics import (
    INSTANCE_UPGRADES,
    KUBE_REQUESTS,
    ROLLOUT_BATCH,
    ROLLOUT_BATCHES,
    ROLLOUT_DURATION,
    ROLLOUT_IN_PROGRESS,
    ROLLOUT_PROGRESS,
    ROLLOUTS,
    SCALESET_CAPACITY,
    SCALESET_UNHEALTHY_LIMIT,
    forget_scaleset,
    set_rollout_state,
    set_scaleset_instances,
)

logger = logging.getLogger(__name__)
SCALESETS = (GROUP, VERSION, "scalesets")
RESYNC_SECONDS = 30.0
WAIT_CAP_SECONDS = 30.0
EXPECTATION_SECONDS = 5.0
AUTOMATIC_MODEL_PERCENT = 100
"""Mode Automatic applies a model change to every instance at once (one batch)."""

_wakeups: dict[tuple[str, str], asyncio.Event] = {}
_seen_controls: dict[tuple[str, str], tuple[Any, ...]] = {}


def wake(namespace: str, name: str) -> None:
    event = _wakeups.get((namespace, name))
    if event is not None:
        event.set()


# ---------------------------------------------------------------------------
# Reading the world.


@dataclass(frozen=True)
class VersionImage:
    """Where one version's copies are in the ScaleSet's region."""

    repository: str
    digest: str
    endpoints: tuple[RegistryEndpoint, ...]

    def image(self, index: int) -> tuple[str, str | None]:
        endpoint = self.endpoints[index % len(self.endpoints)]
        hosts = [inst.registry_host(e.url) for e in self.endpoints]
        return inst.image_for(index, hosts, self.repository, self.digest), endpoint.pull_secret_name


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
        done = {
            r.get("registry")
            for r in (line or {}).get("replicas") or []
            if r.get("state") == "Completed"
        }
        chosen = tuple(e for e in endpoints if e.name in done and e.name in by_name)
        if chosen:
            images[obj["spec"]["version"]] = VersionImage(repository, digest, chosen)
    return images


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


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
            ready, ready_since = True, _time(c.get("lastTransitionTime"))
    return ro.Instance(
        index=index,
        version=labels.get(inst.REVISION_LABEL),
        exists=True,
        ready=ready,
        ready_since=ready_since,
        created=_time(meta.get("creationTimestamp")),
        deleting=meta.get("deletionTimestamp") is not None,
        failed=status.get("phase") in ("Failed", "Succeeded"),
    )


def load_rollout(status: Mapping[str, Any]) -> ro.Rollout | None:
    """The rollout persisted in status.rollingUpgrade (None before the first one)."""
    upgrade = status.get("rollingUpgrade") or {}
    running = upgrade.get("runningStatus") or {}
    if not upgrade.get("toRevision") or not upgrade.get("phase"):
        return None
    error = upgrade.get("error") or {}
    return ro.Rollout(
        from_version=upgrade.get("fromRevision"),
        to_version=upgrade["toRevision"],
        started=_time(running.get("startTime")) or utcnow(),
        code=running.get("code", "RollingForward"),
        phase=upgrade["phase"],
        batch=upgrade.get("currentBatch") or 0,
        members=tuple(upgrade.get("batchInstances") or ()),
        phase_since=_time(upgrade.get("phaseSince")),
        upgraded=tuple(upgrade.get("upgradedInstances") or ()),
        failed=tuple(upgrade.get("failedInstances") or ()),
        rolled_back=tuple(upgrade.get("rolledBackInstances") or ()),
        error_code=error.get("code", ""),
        error_message=error.get("message", ""),
        cancel_requested=bool(upgrade.get("cancelRequested")),
    )


def duration(text: str, default: timedelta) -> timedelta:
    try:
        value = isodate.parse_duration(text)
    except (isodate.ISO8601Error, ValueError):
        return default
    return value if isinstance(value, timedelta) else default


def policy_for(spec: ScaleSetSpec, started_by: str, model_change: bool) -> ro.Policy:
    """The planner's limits for an upgrade started by `started_by` (cloud semantics)."""
    rolling = spec.upgrade_policy.rolling_upgrade_policy
    automatic = spec.upgrade_policy.automatic_os_upgrade_policy
    at_once = model_change and spec.upgrade_policy.mode == "Automatic"
    if started_by == "Platform":
        rollback = not automatic.disable_automatic_rollback
    else:
        rollback = rolling.rollback_failed_instances_on_policy_breach
    return ro.Policy(
        max_batch_percent=AUTOMATIC_MODEL_PERCENT
        if at_once
        else rolling.max_batch_instance_percent,
        max_unhealthy_percent=100 if at_once else rolling.max_unhealthy_instance_percent,
        max_unhealthy_upgraded_percent=(
            100 if at_once else rolling.max_unhealthy_upgraded_instance_percent
        ),
        pause=duration(rolling.pause_time_between_batches, timedelta(0)),
        prioritize_unhealthy=rolling.prioritize_unhealthy_instances,
        rollback=rollback,
        health_timeout=duration(rolling.upgraded_instance_health_timeout, timedelta(minutes=5)),
        min_ready=timedelta(seconds=spec.min_ready_seconds),
    )


def current_revision(observed: Sequence[ro.Instance]) -> str | None:
    """The revision most live instances run (ties: the higher version)."""
    counts = Counter(i.version for i in observed if i.exists and not i.deleting and i.version)
    if not counts:
        return None
    return max(counts, key=lambda r: (counts[r], _version_sort(r)))


def _version_sort(revision: str) -> tuple[int, int, int]:
    try:
        return version_key(inst.version_of(revision))
    except ValueError:
        return (0, 0, 0)


def _annotation_time(annotations: Mapping[str, str], key: str) -> datetime | None:
    value = annotations.get(key)
    if not value:
        return None
    try:
        return _time(value)
    except ValueError:
        return None


# ---------------------------------------------------------------------------
# One pass.


@dataclass(frozen=True)
class Decision:
    """Whether an upgrade may start now, and on whose behalf."""

    may_start: bool
    started_by: str
    model_change: bool
    reason: str
    message: str


def decide(
    spec: ScaleSetSpec, current: str | None, target: str | None, health_source: bool
) -> Decision:
    """The rules of the module docstring for starting an upgrade."""
    if current is None or target is None or current == target:
        return Decision(False, "Platform", False, cond.IDLE, "")
    model_change = current.split("-", 1)[-1] != target.split("-", 1)[-1]
    current_version, target_version = inst.version_of(current), inst.version_of(target)
    mode = spec.upgrade_policy.mode
    automatic = spec.upgrade_policy.automatic_os_upgrade_policy.enable_automatic_os_upgrade
    if not health_source:
        return Decision(
            False,
            "User",
            model_change,
            "NoHealthSource",
            "the OS container has no readinessProbe: galleon does not upgrade instances "
            "whose health it cannot see",
        )
    if model_change or spec.image_reference.version != LATEST:
        allowed = mode != "Manual"
        return Decision(
            allowed,
            "User",
            model_change,
            "ModelChanged" if allowed else "ManualUpgradePending",
            f"the instance model changed ({current_version} to {target_version})"
            + ("" if allowed else f"; mode Manual: annotate {inst.START_ANNOTATION} to upgrade"),
        )
    if not is_newer(target_version, current_version):
        return Decision(
            False,
            "Platform",
            False,
            "NoDowngrade",
            f"latest in the region is {target_version}, older than {current_version}; "
            "latest never moves backwards (pin a version to downgrade)",
        )
    if automatic:
        return Decision(True, "Platform", False, "NewVersionAvailable", "")
    return Decision(
        False,
        "Platform",
        False,
        "UpgradeAvailable",
        f"{target_version} is available in the region; automatic OS upgrades are off: "
        f"annotate {inst.START_ANNOTATION} to upgrade",
    )


class Fleet:
    """One pass of reconciling one ScaleSet."""

    def __init__(
        self,
        namespace: str,
        name: str,
        versions: Mapping[Any, Any] | None = None,
        regions: Mapping[Any, Any] | None = None,
    ) -> None:
        self.namespace, self.name = namespace, name
        self.versions_index, self.regions_index = versions, regions
        self.requests = 0
        self._claims_checked_generation: int | None = None
        self._claims_pending = False
        self._created: dict[int, tuple[str, float]] = {}
        """Index → (revision, when) of pods this process created: a listing that does not
        show them yet does not make it create them again (the kube controllers'
        "expectations"). Memory only as an optimisation: losing it costs a 409."""

    async def _region(self, name: str) -> dict[str, Any] | None:
        """The Region, from the watch-fed index (from the API when run without one)."""
        if self.regions_index is not None:
            found = list(self.regions_index.get(name, ()))
            return found[0] if found else None
        region = await kube.get_or_none(Region, name)
        self._count()
        return as_dict(region) if region is not None else None

    async def _versions(self, definition: str) -> list[dict[str, Any]]:
        """The definition's ImageVersions in this namespace (index first, as above)."""
        if self.versions_index is not None:
            return list(self.versions_index.get((self.namespace, definition), ()))
        versions = [
            as_dict(v)
            async for v in kube.client().list(ImageVersion, namespace=self.namespace)
            if (as_dict(v).get("spec") or {}).get("imageDefinitionName") == definition
        ]
        self._count()
        return versions

    def _count(self, requests: int = 1) -> None:
        self.requests += requests
        KUBE_REQUESTS.labels("scaleset").inc(requests)

    async def run_once(self) -> float:
        obj = await kube.get_or_none(ScaleSet, self.name, self.namespace)
        self._count()
        if obj is None:
            forget_scaleset(self.namespace, self.name)
            return 3600.0
        body = as_dict(obj)
        if body["metadata"].get("deletionTimestamp"):
            return 3600.0
        with measured("scaleset"):
            return await self._reconcile(body)

    async def _reconcile(self, body: dict[str, Any]) -> float:
        status = body.get("status") or {}
        generation = body["metadata"].get("generation")
        spec = ScaleSetSpec.model_validate(body["spec"])
        try:
            inst.check_model(spec)
        except inst.InvalidModel as error:
            await self._refuse(body, status, cond.INVALID_SPEC, str(error))
            return RESYNC_SECONDS
        region = await self._region(spec.region)
        if region is None:
            await self._refuse(
                body, status, "RegionNotFound", f"Region {spec.region} does not exist"
            )
            return RESYNC_SECONDS
        region_spec = as_dict(region).get("spec") or {}
        endpoints = [
            RegistryEndpoint.model_validate(r) for r in region_spec.get("registries") or []
        ]
        node_selector = dict(region_spec.get("nodeSelector") or {}) or {
            inst.REGION_LABEL: spec.region
        }
        definition = spec.image_reference.image_definition_name
        versions = await self._versions(definition)
        resolution = resolve(
            [version_facts(v) for v in versions], spec.region, spec.image_reference.version
        )
        images = version_images(versions, spec.region, endpoints)
        hash_ = inst.model_hash(spec)
        target = (
            inst.revision(resolution.target, hash_)
            if resolution.target and resolution.target in images
            else None
        )
        pods = [
            as_dict(p)
            async for p in kube.client().list(
                Pod, namespace=self.namespace, labels={inst.SCALESET_LABEL: self.name}
            )
        ]
        self._count()
        observed: list[ro.Instance] = []
        uids: dict[int, str] = {}
        for pod in pods:
            instance = observe(pod)
            if instance is not None:
                observed.append(instance)
                uids[instance.index] = pod["metadata"]["uid"]
        previous = load_rollout(status)
        current = current_revision(observed)
        if current is None and previous is not None and previous.code == "Completed":
            current = previous.to_version
        # Where an upgrade would start from: what most instances *not* on the target run
        # (after a partial upgrade the majority may already run the target).
        outdated = [i for i in observed if i.version != target]
        source = current_revision(outdated) if target and outdated else current
        health_source = inst.has_health_source(spec)
        decision = decide(spec, source, target, health_source)
        annotations = body["metadata"].get("annotations") or {}
        start_at = _annotation_time(annotations, inst.START_ANNOTATION)
        cancel_at = _annotation_time(annotations, inst.CANCEL_ANNOTATION)
        start_requested = (
            start_at is not None
            and health_source
            and target is not None
            and current is not None
            and source is not None
            and target != source
            and (previous is None or start_at > previous.started)
        )
        rollout = previous
        upgrade_status = status.get("rollingUpgrade") or {}
        last_action = (upgrade_status.get("runningStatus") or {}).get("lastAction") or "Start"
        last_action_time = (upgrade_status.get("runningStatus") or {}).get("lastActionTime")
        if (
            rollout is not None
            and rollout.code == "RollingForward"
            and cancel_at is not None
            and cancel_at >= rollout.started
            and not rollout.cancel_requested
        ):
            rollout = replace(rollout, cancel_requested=True)
            last_action, last_action_time = "Cancel", rfc3339(utcnow())
        starter = "User" if start_requested else decision.started_by
        running = rollout is not None and rollout.active
        started_by = upgrade_status.get("startedBy") if running else starter
        policy = policy_for(spec, started_by or starter, decision.model_change)
        fleet = ro.Fleet(
            capacity=spec.capacity,
            instances=observed,
            current_version=source,
            target_version=target,
            may_start=decision.may_start,
            paused=spec.paused,
            start_requested=start_requested,
        )
        now = utcnow()
        plan = ro.plan(fleet, rollout, policy, now)
        new = plan.rollout
        starting = new is not None and (previous is None or new.started != previous.started)
        if starting:
            last_action, last_action_time = "Start", rfc3339(now)
            started_by = starter
            if spec.upgrade_policy.rolling_upgrade_policy.max_surge:
                kopf.info(
                    cast(Any, body),
                    reason="MaxSurgeNotApplied",
                    message="maxSurge is set, but instances keep their identity and data "
                    "disks, so each one is replaced in place (docs/rollout.md)",
                )
                self._count()
        else:
            started_by = upgrade_status.get("startedBy") or starter
        images_by_revision = {
            rev: images.get(inst.version_of(rev))
            for rev in {a.version for a in plan.actions if isinstance(a, ro.Create)}
        }
        creatable = [
            a
            for a in plan.actions
            if not isinstance(a, ro.Create) or images_by_revision.get(a.version) is not None
        ]
        missing_images = sorted(
            {inst.version_of(r) for r, image in images_by_revision.items() if image is None}
        )
        new_status = self._status(
            body,
            status,
            spec,
            generation,
            resolution,
            target,
            current,
            observed,
            new,
            policy,
            now,
            started_by=started_by,
            last_action=last_action,
            last_action_time=last_action_time,
            decision=decision,
            missing_images=missing_images,
        )
        if new_status != {k: status.get(k) for k in new_status}:
            await kube.patch_status(ScaleSet, self.name, new_status, self.namespace)
            self._count()
        self._ended(previous, new, now)
        count_instance_upgrades(previous, new)
        live_pods = {p["metadata"]["name"] for p in pods}
        await self._apply(
            body, spec, creatable, images_by_revision, node_selector, generation, live_pods, uids
        )
        for event in plan.events:
            post = kopf.info if event.type == "Normal" else kopf.warn
            post(cast(Any, body), reason=event.reason, message=event.message)
            self._count()
        self._metrics(spec, observed, new, policy, now)
        for action in plan.actions:
            logger.debug("%s/%s action: %s", self.namespace, self.name, action)
        logger.debug(
            "%s/%s pass: %s batch %s, %d actions, requeue %.1fs",
            self.namespace,
            self.name,
            new.phase if new else "-",
            new.batch if new else "-",
            len(plan.actions),
            plan.requeue_after,
        )
        return min(plan.requeue_after, WAIT_CAP_SECONDS)

    async def _refuse(self, body: dict[str, Any], status: Any, reason: str, message: str) -> None:
        """Bad input or a missing dependency: say so, change nothing on the instances."""
        generation = body["metadata"].get("generation")
        before = [c for c in status.get("conditions") or [] if c.get("type") == cond.READY]
        if not before or before[0].get("reason") != reason:
            kopf.warn(cast(Any, body), reason=reason, message=message)
        updates = [
            *kstatus(False, reason, message, stalled=True),
            (cond.UPGRADING, "False", reason, message),
        ]
        await kube.patch_status(
            ScaleSet,
            self.name,
            {
                "observedGeneration": generation,
                "conditions": conditions(status, generation, updates),
            },
            self.namespace,
        )
        self._count()

    # -- acting on instances ------------------------------------------------

    async def _apply(
        self,
        body: dict[str, Any],
        spec: ScaleSetSpec,
        actions: Sequence[ro.Create | ro.Delete],
        images: Mapping[str, VersionImage | None],
        node_selector: Mapping[str, str],
        generation: int | None,
        pods: set[str],
        uids: Mapping[int, str],
    ) -> None:
        creates = [a for a in actions if isinstance(a, ro.Create)]
        deletes = [a for a in actions if isinstance(a, ro.Delete)]
        scale_in = any(a.reason == "ScaleIn" for a in deletes)
        if spec.data_disks and (
            creates
            or scale_in
            or self._claims_pending
            or self._claims_checked_generation != generation
        ):
            self._claims_pending = await self._reconcile_claims(body, spec, pods)
            self._claims_checked_generation = generation

        async def create(action: ro.Create) -> None:
            recent = self._created.get(action.index)
            if (
                recent is not None
                and recent[0] == action.version
                and (time.monotonic() - recent[1] < EXPECTATION_SECONDS)
            ):
                return  # created moments ago; the listing has not caught up yet
            image = images[action.version]
            assert image is not None
            reference, pull_secret = image.image(action.index)
            manifest = inst.pod_manifest(
                body, spec, action.index, action.version, reference, node_selector, pull_secret
            )
            try:
                await kube.client().create(codecs.from_dict(manifest))
                self._created[action.index] = (action.version, time.monotonic())
            except ApiError as error:
                if error.status.code != 409:
                    raise
            self._count()

        async def delete(action: ro.Delete) -> None:
            uid = uids.get(action.index)
            if uid is None:
                return
            await kube.delete_if_uid(
                Pod, inst.pod_name(self.name, action.index), self.namespace, uid
            )
            self._count()

        await asyncio.gather(*map(delete, deletes), *map(create, creates))

    async def _reconcile_claims(
        self, body: dict[str, Any], spec: ScaleSetSpec, pods: set[str]
    ) -> bool:
        """Create missing data disks of instances below capacity; apply the retention
        policy to the others (ownership for whenDeleted, deletion for whenScaled, once
        the instance's pod is gone). True while a disk waits for its pod to go."""
        retention = spec.persistent_volume_claim_retention_policy
        owned = retention.when_deleted == "Delete"
        uid = body["metadata"]["uid"]
        existing = {
            as_dict(c)["metadata"]["name"]: as_dict(c)
            async for c in kube.client().list(
                PersistentVolumeClaim,
                namespace=self.namespace,
                labels={inst.SCALESET_LABEL: self.name},
            )
        }
        self._count()
        work = []
        waiting = False
        for index in range(spec.capacity):
            for disk in spec.data_disks:
                name = inst.claim_name(disk.name, self.name, index)
                if name not in existing:
                    manifest = inst.claim_manifest(body, disk, index, owned=owned)
                    work.append(self._create_claim(manifest))
        for name, claim in existing.items():
            meta = claim["metadata"]
            labels = meta.get("labels") or {}
            try:
                index = int(labels.get(inst.INDEX_LABEL, ""))
            except ValueError:
                continue
            if (
                index >= spec.capacity
                and retention.when_scaled == "Delete"
                and meta.get("deletionTimestamp") is None
            ):
                if inst.pod_name(self.name, index) in pods:
                    waiting = True
                else:
                    work.append(self._delete_claim(name))
                continue
            refs = meta.get("ownerReferences") or []
            has_owner = any(r.get("uid") == uid for r in refs)
            if has_owner != owned:
                new_refs = [r for r in refs if r.get("uid") != uid]
                if owned:
                    new_refs.append(inst.owner_reference(body))
                work.append(self._patch_claim_owners(name, new_refs))
        await asyncio.gather(*work)
        return waiting

    async def _create_claim(self, manifest: dict[str, Any]) -> None:
        try:
            await kube.client().create(codecs.from_dict(manifest))
        except ApiError as error:
            if error.status.code != 409:
                raise
        self._count()

    async def _delete_claim(self, name: str) -> None:
        with contextlib.suppress(ApiError):
            await kube.client().delete(PersistentVolumeClaim, name, namespace=self.namespace)
        self._count()

    async def _patch_claim_owners(self, name: str, refs: list[dict[str, Any]]) -> None:
        await kube.client().patch(
            PersistentVolumeClaim,
            name,
            {"metadata": {"ownerReferences": refs}},
            namespace=self.namespace,
            patch_type=PatchType.MERGE,
        )
        self._count()

    # -- status ---------------------------------------------------------------

    def _status(
        self,
        body: dict[str, Any],
        status: Mapping[str, Any],
        spec: ScaleSetSpec,
        generation: int | None,
        resolution: Resolution,
        target: str | None,
        current: str | None,
        observed: Sequence[ro.Instance],
        rollout: ro.Rollout | None,
        policy: ro.Policy,
        now: datetime,
        *,
        started_by: str,
        last_action: str,
        last_action_time: str | None,
        decision: Decision,
        missing_images: Sequence[str],
    ) -> dict[str, Any]:
        live = [i for i in observed if i.exists and not i.deleting]
        healthy = [i for i in live if ro.health(i, policy, now) == "Healthy"]
        by_version: dict[str, list[int]] = {}
        for i in live:
            version = inst.version_of(i.version or "unknown")
            counts = by_version.setdefault(version, [0, 0])
            counts[0] += 1
            counts[1] += ro.health(i, policy, now) == "Healthy"
        result: dict[str, Any] = {
            "observedGeneration": generation,
            "replicas": len(live),
            "readyReplicas": len(healthy),
            "selector": inst.selector(self.name),
            "currentVersion": inst.version_of(current) if current else None,
            "targetVersion": resolution.target,
            "waitingForReplication": resolution.waiting_for_replication,
            "instancesByVersion": [
                {"version": v, "instances": c[0], "healthy": c[1]}
                for v, c in sorted(by_version.items(), key=lambda kv: _version_sort(kv[0]))
            ],
        }
        if rollout is not None:
            result["rollingUpgrade"] = self._upgrade_status(
                spec, rollout, policy, observed, now, started_by, last_action, last_action_time
            )
            result["upgradeHistory"] = self._history(status, result["rollingUpgrade"], rollout)
        replacing = set(rollout.members) if rollout is not None and rollout.active else set()
        present = {i.index for i in live}
        unhealthy = len(
            [
                i
                for i in live
                if i.index not in replacing and ro.health(i, policy, now) == "Unhealthy"
            ]
        ) + len([i for i in range(spec.capacity) if i not in present and i not in replacing])
        result["conditions"] = conditions(
            status,
            generation,
            self._conditions(
                spec,
                resolution,
                target,
                current,
                rollout,
                decision,
                len(healthy),
                unhealthy,
                missing_images,
            ),
        )
        return result

    def _upgrade_status(
        self,
        spec: ScaleSetSpec,
        rollout: ro.Rollout,
        policy: ro.Policy,
        observed: Sequence[ro.Instance],
        now: datetime,
        started_by: str,
        last_action: str,
        last_action_time: str | None,
    ) -> dict[str, Any]:
        seen = {i.index: i for i in observed}
        failed = set(rollout.failed)
        successful = [i for i in rollout.upgraded if i not in failed]
        in_progress = [] if rollout.phase == "Done" else list(rollout.members)
        pending = (
            max(0, spec.capacity - len(set(rollout.upgraded) | set(in_progress)))
            if rollout.code == "RollingForward"
            else 0
        )
        upgrade: dict[str, Any] = {
            "fromVersion": inst.version_of(rollout.from_version) if rollout.from_version else None,
            "toVersion": inst.version_of(rollout.to_version),
            "fromRevision": rollout.from_version,
            "toRevision": rollout.to_version,
            "startedBy": started_by,
            "runningStatus": {
                "code": rollout.code,
                "startTime": rfc3339(rollout.started),
                "lastAction": last_action,
                "lastActionTime": last_action_time or rfc3339(rollout.started),
            },
            "progress": {
                "successfulInstanceCount": len(successful),
                "failedInstanceCount": len(failed),
                "inProgressInstanceCount": len(in_progress),
                "pendingInstanceCount": pending,
            },
            "currentBatch": rollout.batch,
            "totalBatches": ro.planned_batches(rollout, spec.capacity, policy),
            "error": (
                {"code": rollout.error_code, "message": rollout.error_message}
                if rollout.error_code
                else None
            ),
            "rollbackInfo": None,
            "phase": rollout.phase,
            "phaseSince": rfc3339(rollout.phase_since or rollout.started),
            "batchInstances": list(rollout.members),
            "upgradedInstances": list(rollout.upgraded),
            "failedInstances": list(rollout.failed),
            "rolledBackInstances": list(rollout.rolled_back),
            "cancelRequested": rollout.cancel_requested,
        }
        if rollout.rolled_back:
            states = [
                ro.health(x, policy, now)
                if (x := seen.get(i)) is not None and x.version == rollout.from_version
                else "Initializing"
                for i in rollout.rolled_back
            ]
            upgrade["rollbackInfo"] = {
                "successfullyRolledbackInstanceCount": states.count("Healthy"),
                "failedRolledbackInstanceCount": states.count("Unhealthy"),
            }
        return upgrade

    @staticmethod
    def _history(
        status: Mapping[str, Any], upgrade: Mapping[str, Any], rollout: ro.Rollout
    ) -> list[dict[str, Any]]:
        history = [dict(h) for h in status.get("upgradeHistory") or []]
        if rollout.phase != "Done":
            return history
        start = upgrade["runningStatus"]["startTime"]
        entry = {
            "fromVersion": upgrade["fromVersion"],
            "toVersion": upgrade["toVersion"],
            "startedBy": upgrade["startedBy"],
            "startTime": start,
            "endTime": rfc3339(rollout.phase_since or utcnow()),
            "result": rollout.code,
            "progress": upgrade["progress"],
            "error": upgrade["error"],
            "rollbackInfo": upgrade["rollbackInfo"],
        }
        rest = [
            h
            for h in history
            if (h.get("startTime"), h.get("toVersion")) != (start, upgrade["toVersion"])
        ]
        return [entry, *rest][:MAX_UPGRADE_HISTORY]

    @staticmethod
    def _conditions(
        spec: ScaleSetSpec,
        resolution: Resolution,
        target: str | None,
        current: str | None,
        rollout: ro.Rollout | None,
        decision: Decision,
        healthy: int,
        unhealthy: int,
        missing_images: Sequence[str],
    ) -> list[Any]:
        capacity = spec.capacity
        active = rollout is not None and rollout.active
        # A fault matters while the ScaleSet still targets the faulted revision (or has
        # no target at all); moving the spec on clears it.
        faulted = (
            rollout is not None
            and rollout.code == "Faulted"
            and (target is None or rollout.to_version == target)
        )
        if active:
            assert rollout is not None
            message = (
                f"upgrading {inst.version_of(rollout.from_version or '') or '-'} to "
                f"{inst.version_of(rollout.to_version)}: batch {rollout.batch}, "
                f"{len(rollout.upgraded)} of {capacity} upgraded"
            )
            reason = "RollingForward"
            if rollout.phase == "RollingBack":
                reason = "RollingBack"
                message = (
                    f"the upgrade to {inst.version_of(rollout.to_version)} faulted; rolling "
                    f"instances {', '.join(map(str, rollout.members))} back to "
                    f"{inst.version_of(rollout.from_version or '')}"
                )
            if spec.paused and reason == "RollingForward":
                message += " (paused)"
            upgrading = (cond.UPGRADING, "True", reason, message)
            if spec.paused and reason == "RollingForward":
                ready = kstatus(False, "Paused", message, progressing=False)
            else:
                ready = kstatus(False, reason, message, progressing=True)
        else:
            reason = decision.reason if decision.message else "UpToDate"
            message = decision.message or "no upgrade running"
            if (
                rollout is not None
                and rollout.code != "Completed"
                and (faulted or rollout.code == "Cancelled")
            ):
                reason = "Upgrade" + rollout.code
                message = (
                    f"the upgrade to {inst.version_of(rollout.to_version)} "
                    f"{rollout.code.lower()}"
                    + (f": {rollout.error_message}" if rollout.error_message else "")
                    + f"; annotate {inst.START_ANNOTATION} to try again"
                )
            upgrading = (cond.UPGRADING, "False", reason, message)
            if faulted:
                ready = kstatus(False, "UpgradeFaulted", message, stalled=True)
            elif missing_images:
                message = f"no copy of {', '.join(missing_images)} in {spec.region}"
                ready = kstatus(False, "NoCopyInRegion", message, progressing=True)
            elif healthy >= capacity:
                ready = kstatus(
                    True, "InstancesHealthy", f"{healthy} of {capacity} instances healthy"
                )
            else:
                ready = kstatus(
                    False,
                    "InstancesNotHealthy",
                    f"{healthy} of {capacity} instances healthy",
                    progressing=True,
                )
        if target is None and not active:
            # Nothing usable in the region: say why (instances, if any, stay as they are).
            reason, message = resolution.reason, resolution.message
            if resolution.target is not None:
                reason = "NoCopyInRegion"
                message = f"version {resolution.target} has no completed copy in {spec.region}"
            stalled = reason == "VersionNotFound"
            ready = kstatus(False, reason, message, progressing=not stalled, stalled=stalled)
        if faulted:
            assert rollout is not None
            degraded = (
                cond.DEGRADED,
                "True",
                rollout.error_code or "Faulted",
                rollout.error_message,
            )
        elif unhealthy:
            degraded = (
                cond.DEGRADED,
                "True",
                "InstancesUnhealthy",
                f"{unhealthy} of {capacity} instances unhealthy or missing",
            )
        else:
            degraded = (cond.DEGRADED, "False", "InstancesHealthy", "")
        return [*ready, upgrading, degraded]

    # -- metrics ----------------------------------------------------------------

    def _ended(self, previous: ro.Rollout | None, new: ro.Rollout | None, now: datetime) -> None:
        """Count a rollout once, when this process sees it end."""
        if new is None or new.phase != "Done":
            return
        if previous is not None and previous.started == new.started and previous.phase == "Done":
            return
        ROLLOUTS.labels(new.code).inc()
        ROLLOUT_DURATION.labels(new.code).observe((now - new.started).total_seconds())

    def _metrics(
        self,
        spec: ScaleSetSpec,
        observed: Sequence[ro.Instance],
        rollout: ro.Rollout | None,
        policy: ro.Policy,
        now: datetime,
    ) -> None:
        counts: dict[tuple[str, str], int] = {}
        for i in observed:
            if not i.exists or i.deleting:
                continue
            key = (inst.version_of(i.version or "unknown"), ro.health(i, policy, now))
            counts[key] = counts.get(key, 0) + 1
        ns, name = self.namespace, self.name
        set_scaleset_instances(ns, name, counts)
        SCALESET_CAPACITY.labels(ns, name).set(spec.capacity)
        limit = spec.upgrade_policy.rolling_upgrade_policy.max_unhealthy_instance_percent
        SCALESET_UNHEALTHY_LIMIT.labels(ns, name).set(spec.capacity * limit // 100)
        active = rollout is not None and rollout.active
        ROLLOUT_IN_PROGRESS.labels(ns, name).set(1 if active else 0)
        if rollout is not None:
            set_rollout_state(ns, name, rollout.code)
            done = len(rollout.upgraded)
            ROLLOUT_PROGRESS.labels(ns, name).set(done / spec.capacity if spec.capacity else 1)
            ROLLOUT_BATCH.labels(ns, name).set(rollout.batch)
            ROLLOUT_BATCHES.labels(ns, name).set(ro.planned_batches(rollout, spec.capacity, policy))


def count_instance_upgrades(previous: ro.Rollout | None, new: ro.Rollout | None) -> None:
    """Instance upgrade results newly recorded between two rollout states."""
    if new is None:
        return
    same = previous is not None and previous.started == new.started
    before_up = set(previous.upgraded) if same and previous else set()
    before_failed = set(previous.failed) if same and previous else set()
    before_back = set(previous.rolled_back) if same and previous else set()
    new_failed = set(new.failed) - before_failed
    new_up = set(new.upgraded) - before_up
    INSTANCE_UPGRADES.labels("Healthy").inc(len(new_up - set(new.failed)))
    INSTANCE_UPGRADES.labels("Unhealthy").inc(len(new_failed))
    INSTANCE_UPGRADES.labels("RolledBack").inc(len(set(new.rolled_back) - before_back))


# ---------------------------------------------------------------------------
# kopf wiring.


@kopf.daemon(*SCALESETS, cancellation_timeout=30.0)
async def fleet(
    stopped: Any,
    name: str,
    namespace: Any,
    logger: Any,
    image_versions_by_definition: Any = None,
    regions_by_name: Any = None,
    **_: Any,
) -> None:
    """Reconcile one ScaleSet whenever something it depends on changes."""
    key = (namespace, name)
    wakeup = _wakeups.setdefault(key, asyncio.Event())
    worker = Fleet(namespace, name, image_versions_by_definition, regions_by_name)
    failures = 0
    try:
        while not stopped:
            wakeup.clear()
            try:
                wait = await worker.run_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                wait = min(WAIT_CAP_SECONDS, 2.0**failures)
                logger.exception("scale set pass failed; retrying in %.0fs", wait)
            deadline = time.monotonic() + wait
            while not stopped and time.monotonic() < deadline and not wakeup.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        wakeup.wait(), timeout=min(1.0, max(0.0, deadline - time.monotonic()))
                    )
    finally:
        _wakeups.pop(key, None)
        _seen_controls.pop(key, None)


@kopf.index(GROUP, VERSION, "imageversions")
def image_versions_by_definition(namespace: Any, body: Any, **_: Any) -> dict[Any, Any]:
    """ImageVersions by (namespace, definition), kept current by kopf's watch: a pass
    reads versions from memory instead of listing them."""
    snapshot = copy.deepcopy(dict(body))
    definition = (snapshot.get("spec") or {}).get("imageDefinitionName")
    return {(namespace, definition): snapshot}


@kopf.index(GROUP, VERSION, "regions")
def regions_by_name(name: str, body: Any, **_: Any) -> dict[Any, Any]:
    return {name: copy.deepcopy(dict(body))}


@kopf.on.event(*SCALESETS)
async def scaleset_changed(event: Any, body: Any, name: str, namespace: Any, **_: Any) -> None:
    """Wake the daemon on spec or control changes (not on its own status writes)."""
    meta = body.get("metadata", {})
    annotations = meta.get("annotations") or {}
    controls = (
        meta.get("generation"),
        annotations.get(inst.START_ANNOTATION),
        annotations.get(inst.CANCEL_ANNOTATION),
        meta.get("deletionTimestamp"),
    )
    key = (namespace, name)
    if _seen_controls.get(key) != controls:
        _seen_controls[key] = controls
        wake(namespace, name)
    if event.get("type") == "DELETED":
        forget_scaleset(namespace, name)


@kopf.on.event("", "v1", "pods", labels={inst.SCALESET_LABEL: kopf.PRESENT})
async def instance_changed(labels: Any, namespace: Any, **_: Any) -> None:
    wake(namespace, labels[inst.SCALESET_LABEL])


@kopf.on.event(GROUP, VERSION, "imageversions")
async def versions_changed(namespace: Any, **_: Any) -> None:
    for ns, name in list(_wakeups):
        if ns == namespace:
            wake(ns, name)
