"""ImageVersion controller: publish a version once, replicate it to every target region.

Rules of this module:
- One kopf daemon per ImageVersion runs `Publication.run_once` in a loop: read the
  object afresh, check parents and conflicts, resolve the source digest once
  (recorded in status, never re-resolved), plan with `galleon.core.replication`,
  remove what is no longer wanted (if the safety profile allows), copy what is
  missing, and write the status. Then it sleeps until the spec changes or the
  resync interval passes.
- All progress lives in `status.replicationStatus`: a restarted operator plans
  from it, re-copies only replicas not recorded Completed at the source digest,
  and the copier skips blobs already present, so nothing completed is copied again.
- Concurrency: at most `replication_concurrency` versions copy at once, and at
  most `region_concurrency` destination registries of one region are written at
  once (semaphores taken in a fixed order, so two versions cannot deadlock).
- Transient errors (registry down, 5xx, timeouts) retry with capped exponential
  backoff and show in the replica's message; permanent ones (unauthorized, not
  found, unknown region, too few registries) fail that region only, with a
  condition and an Event, and never stop the other regions.
- Status writes are throttled to one per `status_interval` seconds while bytes
  flow, and written at once on every state change.
- Deletion is behind the finalizer: held (condition DeletionHeld + Event, nothing
  deleted) while a ScaleSet runs the version, otherwise every copy is deleted.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import kopf

from galleon import GROUP, VERSION
from galleon.api.imageversion import ImageVersionSpec
from galleon.api.region import RegistryEndpoint
from galleon.controllers import config, registries
from galleon.controllers.common import (
    as_dict,
    condition_reason,
    conditions,
    kstatus,
    rfc3339,
    utcnow,
)
from galleon.controllers.gallery import refresh_definition
from galleon.core import conditions as cond
from galleon.core import replication as rep
from galleon.core.replication import Location, ReplicaProgress
from galleon.kube import client as kube
from galleon.kube.resources import Gallery, ImageDefinition, ImageVersion, Region, ScaleSet
from galleon.metrics import (
    REPLICATED_BYTES,
    REPLICATION_DURATION,
    REPLICATION_ERRORS,
    REPLICATIONS_IN_FLIGHT,
    forget_replication_state,
    set_replication_state,
)

logger = logging.getLogger(__name__)
VERSIONS = (GROUP, VERSION, "imageversions")
PARENT_RETRY_SECONDS = 10.0
PERMANENT_RETRY_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 30.0

_global_slots: asyncio.Semaphore | None = None
_region_slots: dict[str, asyncio.Semaphore] = {}


def _slots() -> asyncio.Semaphore:
    global _global_slots
    if _global_slots is None:
        _global_slots = asyncio.Semaphore(config.current().replication_concurrency)
    return _global_slots


def _region_slot(region: str) -> asyncio.Semaphore:
    if region not in _region_slots:
        _region_slots[region] = asyncio.Semaphore(config.current().region_concurrency)
    return _region_slots[region]


def backoff(attempt: int) -> float:
    """Seconds before retry `attempt` (1, 2, 4, ... capped, with jitter)."""
    return float(min(MAX_BACKOFF_SECONDS, 2 ** max(0, attempt - 1)) * random.uniform(0.8, 1.2))


@dataclass(frozen=True)
class RegionInfo:
    """A Region as replication needs it: registries by name, in the Region's order."""

    name: str
    endpoints: tuple[RegistryEndpoint, ...]

    def endpoint(self, registry: str) -> RegistryEndpoint | None:
        return next((e for e in self.endpoints if e.name == registry), None)


async def read_regions() -> dict[str, RegionInfo]:
    regions: dict[str, RegionInfo] = {}
    async for obj in kube.client().list(Region):
        spec = obj.get("spec") or {}
        endpoints = tuple(RegistryEndpoint.model_validate(r) for r in spec.get("registries") or [])
        regions[obj["metadata"]["name"]] = RegionInfo(obj["metadata"]["name"], endpoints)
    return regions


class Reporter:
    """The status of one version being replicated, written at most every few seconds."""

    def __init__(self, namespace: str, name: str, obj: Mapping[str, Any]) -> None:
        self.namespace, self.name = namespace, name
        self.generation = obj["metadata"].get("generation")
        self.status: dict[str, Any] = dict(obj.get("status") or {})
        self.layouts: dict[str, rep.RegionLayout] = {}
        self.replicas: dict[Location, ReplicaProgress] = {}
        self.refused: dict[str, list[Location]] = {}
        self.started: dict[str, float] = {}
        self._last_write = 0.0
        self._dirty = False
        self.definition = (obj.get("spec") or {}).get("imageDefinitionName", "")
        self.version = (obj.get("spec") or {}).get("version", "")

    def load_recorded(self) -> list[rep.Recorded]:
        """Replicas as the status recorded them (the plan starts from these)."""
        recorded = []
        summary = (self.status.get("replicationStatus") or {}).get("summary") or []
        for region in summary:
            for replica in region.get("replicas") or []:
                location = Location(region["region"], replica["registry"])
                recorded.append(rep.Recorded(location, replica["state"], replica.get("digest")))
                self.replicas[location] = ReplicaProgress(
                    location,
                    replica["state"],
                    bytes_done=replica.get("bytesDone", 0),
                    bytes_total=replica.get("bytesTotal", 0),
                    digest=replica.get("digest"),
                    message=replica.get("message", ""),
                )
            bytes_copied = region.get("bytesCopied", 0)
            bytes_skipped = region.get("bytesSkipped", 0)
            # Keep the region's counters across restarts: credit them to its first replica.
            mine = [r for loc, r in self.replicas.items() if loc.region == region["region"]]
            if mine:
                mine[0].bytes_copied, mine[0].bytes_skipped = bytes_copied, bytes_skipped
        return recorded

    def replica(self, location: Location) -> ReplicaProgress:
        if location not in self.replicas:
            self.replicas[location] = ReplicaProgress(location)
        return self.replicas[location]

    def summaries(self) -> list[rep.RegionSummary]:
        regions = dict(self.layouts)
        # Regions no longer targeted stay visible while their replicas are removed.
        for location, replica in self.replicas.items():
            if location.region not in regions and replica.state in ("Removing", "Failed"):
                regions[location.region] = rep.RegionLayout(location.region, 0)
        return [
            rep.summarize_region(
                regions[name],
                [r for r in self.replicas.values() if r.location.region == name],
                refused=self.refused.get(name, ()),
            )
            for name in sorted(regions)
        ]

    def replication_status(self) -> dict[str, Any]:
        summaries = self.summaries()
        aggregated, ratio = rep.aggregate(summaries)
        previous = {
            s["region"]: s
            for s in (self.status.get("replicationStatus") or {}).get("summary") or []
        }
        now = rfc3339(utcnow())
        lines = []
        for s in summaries:
            before = previous.get(s.region) or {}
            changed = before.get("state") != s.state
            lines.append(
                {
                    "region": s.region,
                    "state": s.state,
                    "progress": s.progress,
                    "details": s.details,
                    "desiredReplicas": s.desired_replicas,
                    "completedReplicas": s.completed_replicas,
                    "bytesCopied": s.bytes_copied,
                    "bytesSkipped": s.bytes_skipped,
                    "bytesTotal": s.bytes_total,
                    "replicas": [
                        {
                            "registry": r.location.registry,
                            "state": r.state,
                            "bytesDone": r.bytes_done,
                            "bytesTotal": r.bytes_total,
                            **({"digest": r.digest} if r.digest else {}),
                            "message": r.message[:1024],
                        }
                        for r in s.replicas
                    ],
                    "lastTransitionTime": now if changed else before.get("lastTransitionTime", now),
                }
            )
            set_replication_state(self.namespace, self.definition, self.version, s.region, s.state)
        for region in set(previous) - {s.region for s in summaries}:
            forget_replication_state(self.namespace, self.definition, self.version, region)
        return {"aggregatedState": aggregated, "completedRegions": ratio, "summary": lines}

    def touch(self) -> None:
        self._dirty = True

    def readiness(self) -> list[Any]:
        """Ready/Reconciling/Stalled (and removal, parent) conditions from the replicas."""
        summaries = self.summaries()
        aggregated, ratio = rep.aggregate(summaries)
        failed = [s for s in summaries if s.state == "Failed"]
        if aggregated == "Completed":
            ready, reason = True, cond.REPLICATED
            message = f"replicated to {ratio} regions"
        elif aggregated == "Failed":
            ready, reason = False, cond.REPLICATION_FAILED
            message = "; ".join(f"{s.region}: {s.details}" for s in failed)
        else:
            ready, reason = False, cond.REPLICATING
            message = f"{ratio} regions replicated"
            if failed:
                message += "; failed: " + "; ".join(f"{s.region}: {s.details}" for s in failed)
        updates: list[Any] = kstatus(
            ready,
            reason,
            message,
            progressing=aggregated == "InProgress",
            stalled=aggregated == "Failed",
        )
        refused = [loc for locations in self.refused.values() for loc in locations]
        if refused:
            kept = ", ".join(f"{loc.region}/{loc.registry}" for loc in refused)
            refusal = (
                f"replicas {kept} are no longer wanted but kept: "
                "safetyProfile.allowDeletionOfReplicatedLocations is false"
            )
            updates.append((cond.REMOVAL_REFUSED, "True", cond.REMOVAL_REFUSED, refusal))
        else:
            updates.append((cond.REMOVAL_REFUSED, "False", cond.RECONCILED, ""))
        updates.append((cond.PARENT_FOUND, "True", cond.PARENT_PRESENT, ""))
        return updates

    async def flush(self, *, force: bool = False, extra: Mapping[str, Any] | None = None) -> None:
        """Write the status now if forced, else only when due and something changed.

        The replication state and the conditions derived from it always travel in
        one patch, so no reader sees "Completed" beside "Reconciling"."""
        due = time.monotonic() - self._last_write >= config.current().status_interval
        if not force and not (self._dirty and due):
            return
        patch = {
            "replicationStatus": self.replication_status(),
            "observedGeneration": self.generation,
            "conditions": conditions(self.status, self.generation, self.readiness()),
            **(extra or {}),
        }
        self.status.update(patch)
        self._dirty = False
        self._last_write = time.monotonic()
        await kube.patch_status(ImageVersion, self.name, patch, self.namespace)

    async def set_conditions(self, updates: Sequence[Any], **fields: Any) -> None:
        """Write conditions (and other status fields) before any replica is planned."""
        patch = {
            **fields,
            "observedGeneration": self.generation,
            "conditions": conditions(self.status, self.generation, updates),
        }
        self.status.update(patch)
        await kube.patch_status(ImageVersion, self.name, patch, self.namespace)


def _event_once(body: Any, status: Any, type_: str, ok: bool, reason: str, message: str) -> None:
    """Post an Event only when the condition's status or reason changes."""
    if condition_reason(status, type_) != ("True" if ok else "False", reason):
        (kopf.info if ok else kopf.warn)(body, reason=reason, message=message)


class Publication:
    """One pass of publishing and replicating one ImageVersion."""

    def __init__(self, namespace: str, name: str) -> None:
        self.namespace, self.name = namespace, name

    async def run_once(self) -> float:
        """Do what can be done now; return the seconds until the next pass."""
        obj = await kube.get_or_none(ImageVersion, self.name, self.namespace)
        if obj is None:
            return 3600.0
        body = as_dict(obj)
        if body["metadata"].get("deletionTimestamp"):
            return 3600.0
        reporter = Reporter(self.namespace, self.name, body)
        spec = ImageVersionSpec.model_validate(body["spec"])
        parents = await self._parents(body, reporter, spec)
        if parents is None:
            return PARENT_RETRY_SECONDS
        gallery, definition = parents
        if await self._conflicting(body, reporter, spec):
            return PERMANENT_RETRY_SECONDS
        repository = rep.repository_path(
            (gallery.get("spec") or {}).get("repositoryPrefix", "galleon"),
            self.namespace,
            gallery["metadata"]["name"],
            definition["metadata"]["name"],
        )
        digest = await self._source(body, reporter, spec, repository)
        if digest is None:
            return PERMANENT_RETRY_SECONDS
        return await self._replicate(body, reporter, spec, repository, digest)

    async def _parents(
        self, body: Any, reporter: Reporter, spec: ImageVersionSpec
    ) -> tuple[Any, Any] | None:
        definition = await kube.get_or_none(
            ImageDefinition, spec.image_definition_name, self.namespace
        )
        gallery = None
        if definition is not None:
            gallery_name = (definition.get("spec") or {}).get("galleryName", "")
            gallery = await kube.get_or_none(Gallery, gallery_name, self.namespace)
        if definition is not None and gallery is not None:
            return as_dict(gallery), as_dict(definition)
        if definition is None:
            reason = cond.DEFINITION_NOT_FOUND
            message = (
                f'image definition "{spec.image_definition_name}" does not exist in namespace '
                f"{self.namespace}; waiting for it"
            )
        else:
            reason = cond.GALLERY_NOT_FOUND
            message = "the image definition's gallery does not exist; waiting for it"
        _event_once(body, reporter.status, cond.PARENT_FOUND, False, reason, message)
        # Waiting for a parent resolves by itself (apply order): Reconciling, not Stalled.
        await reporter.set_conditions(
            [
                *kstatus(False, reason, message, progressing=True),
                (cond.PARENT_FOUND, "False", reason, message),
            ]
        )
        return None

    async def _conflicting(self, body: Any, reporter: Reporter, spec: ImageVersionSpec) -> bool:
        """Another (older) ImageVersion already publishes this version of the definition."""
        mine = (body["metadata"]["creationTimestamp"], self.name)
        async for other in kube.client().list(ImageVersion, namespace=self.namespace):
            o = as_dict(other)
            same = (o.get("spec") or {}).get("imageDefinitionName") == spec.image_definition_name
            if not same or (o.get("spec") or {}).get("version") != spec.version:
                continue
            theirs = (o["metadata"]["creationTimestamp"], o["metadata"]["name"])
            if theirs < mine and not o["metadata"].get("deletionTimestamp"):
                message = (
                    f"version {spec.version} of {spec.image_definition_name} is already "
                    f'published by ImageVersion "{theirs[1]}"; delete this one or change its '
                    "version"
                )
                _event_once(
                    body, reporter.status, cond.READY, False, cond.VERSION_CONFLICT, message
                )
                await reporter.set_conditions(
                    kstatus(False, cond.VERSION_CONFLICT, message, stalled=True)
                )
                return True
        return False

    async def _source(
        self, body: Any, reporter: Reporter, spec: ImageVersionSpec, repository: str
    ) -> str | None:
        recorded = reporter.status.get("sourceDigest")
        if recorded:
            return str(recorded)
        try:
            resolved = await registries.resolve_source(spec.source, self.namespace)
        except registries.RegistryError as error:
            reason = {
                "NotFound": cond.SOURCE_NOT_FOUND,
                "Unauthorized": cond.UNAUTHORIZED,
                "Denied": cond.UNAUTHORIZED,
            }.get(error.reason, cond.REGISTRY_UNAVAILABLE if not error.permanent else error.reason)
            message = f"cannot resolve source {spec.source.image}: {error}"
            _event_once(body, reporter.status, cond.SOURCE_RESOLVED, False, reason, message)
            await reporter.set_conditions(
                [
                    *kstatus(
                        False,
                        reason,
                        message,
                        progressing=not error.permanent,
                        stalled=error.permanent,
                    ),
                    (cond.SOURCE_RESOLVED, "False", reason, message),
                ]
            )
            return None
        message = f"{spec.source.image} is {resolved.digest}"
        kopf.info(body, reason=cond.RESOLVED, message=message)
        await reporter.set_conditions(
            [
                *kstatus(False, cond.PROGRESSING, "replication starts", progressing=True),
                (cond.SOURCE_RESOLVED, "True", cond.RESOLVED, message),
            ],
            sourceDigest=resolved.digest,
            sourceMediaType=resolved.media_type,
            sizeBytes=resolved.size,
            publishedDate=rfc3339(utcnow()),
            repository=repository,
        )
        return resolved.digest

    async def _replicate(
        self,
        body: Any,
        reporter: Reporter,
        spec: ImageVersionSpec,
        repository: str,
        digest: str,
    ) -> float:
        regions = await read_regions()
        recorded = reporter.load_recorded()
        reporter.layouts = rep.layout(
            spec.publishing_profile, {n: [e.name for e in r.endpoints] for n, r in regions.items()}
        )
        plan = rep.plan(
            reporter.layouts,
            recorded,
            digest,
            allow_deletion=spec.safety_profile.allow_deletion_of_replicated_locations,
        )
        for location in plan.refused:
            reporter.refused.setdefault(location.region, []).append(location)
        for location in plan.keep:
            reporter.replica(location).state = "Completed"
        for location in plan.copy:
            replica = reporter.replica(location)
            if replica.state != "Failed" or replica.digest != digest:
                replica.state, replica.message = "Queued", ""
        lines = {
            line.get("region"): line
            for line in (reporter.status.get("replicationStatus") or {}).get("summary") or []
        }
        for layout in reporter.layouts.values():
            before = lines.get(layout.region) or {}
            already = before.get("state") == "Failed" and layout.error_message in str(
                before.get("details", "")
            )
            if layout.error_reason and not already:
                # Once per failure, not once per pass: the status already says it.
                REPLICATION_ERRORS.labels(layout.region, layout.error_reason).inc()
                _event_once(
                    body,
                    reporter.status,
                    cond.READY,
                    False,
                    layout.error_reason,
                    f"region {layout.region}: {layout.error_message}",
                )
        await self._write_conditions(body, reporter, plan)

        await self._remove(reporter, regions, plan.remove, repository, digest)
        missing = await self._verify(reporter, regions, plan.keep, repository, digest)
        pending = [*plan.copy, *missing]
        if pending:
            REPLICATIONS_IN_FLIGHT.inc()
            try:
                await self._copy(body, reporter, regions, spec, pending, repository, digest)
            finally:
                REPLICATIONS_IN_FLIGHT.dec()
        await self._write_conditions(body, reporter, plan)
        await refresh_definition(self.namespace, spec.image_definition_name)
        aggregated = reporter.status["replicationStatus"]["aggregatedState"]
        if aggregated == "Completed":
            return config.current().resync_interval
        return PERMANENT_RETRY_SECONDS

    async def _write_conditions(self, body: Any, reporter: Reporter, plan: rep.Plan) -> None:
        """Post the Events of this pass, then write state and conditions together."""
        updates = reporter.readiness()
        ready = updates[0]
        if plan.refused:
            refusal = next(u for u in updates if u[0] == cond.REMOVAL_REFUSED)
            _event_once(
                body, reporter.status, cond.REMOVAL_REFUSED, True, cond.REMOVAL_REFUSED, refusal[3]
            )
        if ready[1] == "True":
            _event_once(body, reporter.status, cond.READY, True, ready[2], ready[3])
        await reporter.flush(force=True)

    async def _remove(
        self,
        reporter: Reporter,
        regions: Mapping[str, RegionInfo],
        locations: Sequence[Location],
        repository: str,
        digest: str,
    ) -> None:
        if not locations:
            return
        for location in locations:
            reporter.replica(location).state = "Removing"
        await reporter.flush(force=True)
        for location in locations:
            replica = reporter.replica(location)
            region = regions.get(location.region)
            endpoint = region.endpoint(location.registry) if region else None
            try:
                if endpoint is not None:
                    await registries.delete_image(endpoint, repository, digest)
            except registries.RegistryError as error:
                replica.state, replica.message = "Failed", f"removal failed: {error}"
                REPLICATION_ERRORS.labels(location.region, error.reason).inc()
                continue
            del reporter.replicas[location]
        await reporter.flush(force=True)

    async def _verify(
        self,
        reporter: Reporter,
        regions: Mapping[str, RegionInfo],
        locations: Sequence[Location],
        repository: str,
        digest: str,
    ) -> list[Location]:
        """Replicas recorded Completed whose manifest has vanished must be copied again."""
        missing = []
        for location in locations:
            endpoint = regions[location.region].endpoint(location.registry)
            try:
                present = endpoint is not None and await registries.has_manifest(
                    endpoint, repository, digest
                )
            except registries.RegistryError:
                continue  # cannot tell now; the next resync checks again
            if not present:
                reporter.replica(location).state = "Queued"
                missing.append(location)
        return missing

    async def _copy(
        self,
        body: Any,
        reporter: Reporter,
        regions: Mapping[str, RegionInfo],
        spec: ImageVersionSpec,
        pending: Sequence[Location],
        repository: str,
        digest: str,
    ) -> None:
        attempts: dict[Location, int] = {}
        remaining = sorted(set(pending))
        async with _slots():
            while remaining:
                batch = self._take_batch(remaining)
                for location in batch:
                    reporter.started.setdefault(location.region, time.monotonic())
                await self._copy_batch(body, reporter, regions, spec, batch, repository, digest)
                retry = []
                for location in batch:
                    replica = reporter.replica(location)
                    if replica.state == "Completed":
                        self._completed_region(reporter, location.region)
                        continue
                    if replica.state == "Replicating":  # a transient failure: try again
                        attempts[location] = attempts.get(location, 0) + 1
                        retry.append(location)
                remaining = sorted(set(remaining) - set(batch) | set(retry))
                if retry and remaining == sorted(retry):
                    await reporter.flush(force=True)
                    await asyncio.sleep(backoff(max(attempts[loc] for loc in retry)))

    @staticmethod
    def _take_batch(remaining: Sequence[Location]) -> list[Location]:
        """At most `region_concurrency` destinations per region in one fan-out."""
        per_region: dict[str, int] = {}
        batch = []
        for location in remaining:
            if per_region.get(location.region, 0) < config.current().region_concurrency:
                per_region[location.region] = per_region.get(location.region, 0) + 1
                batch.append(location)
        return batch

    async def _copy_batch(
        self,
        body: Any,
        reporter: Reporter,
        regions: Mapping[str, RegionInfo],
        spec: ImageVersionSpec,
        batch: Sequence[Location],
        repository: str,
        digest: str,
    ) -> None:
        destinations = []
        for location in batch:
            endpoint = regions[location.region].endpoint(location.registry)
            assert endpoint is not None  # the layout only names existing registries
            destinations.append(registries.Destination(location, endpoint))
            replica = reporter.replica(location)
            replica.state = "Replicating"
        await reporter.flush(force=True)

        def progress(location: Location, done: int, total: int) -> None:
            replica = reporter.replica(location)
            replica.bytes_done, replica.bytes_total = done, total
            reporter.touch()

        # Region semaphores in a fixed order: no two versions can wait on each other.
        held = sorted({d.location.region for d in destinations})
        for region in held:
            await _region_slot(region).acquire()
        flusher = asyncio.create_task(self._flush_periodically(reporter))
        try:
            results = await registries.fan_out(
                spec.source,
                self.namespace,
                digest,
                destinations,
                repository,
                tags=[spec.version],
                progress=progress,
            )
        finally:
            flusher.cancel()
            for region in held:
                _region_slot(region).release()
        for location, outcome in results.items():
            replica = reporter.replica(location)
            if isinstance(outcome, registries.RegistryError):
                REPLICATION_ERRORS.labels(location.region, outcome.reason).inc()
                if outcome.permanent:
                    replica.state, replica.message = "Failed", f"{outcome.reason}: {outcome}"
                    kopf.warn(
                        body,
                        reason=cond.REPLICATION_FAILED,
                        message=f"{location.region}/{location.registry}: {outcome}",
                    )
                else:
                    replica.message = f"retrying: {outcome.reason}: {outcome}"
                continue
            replica.state, replica.digest, replica.message = "Completed", outcome.digest, ""
            replica.bytes_done = replica.bytes_total = outcome.bytes_total
            replica.bytes_copied += outcome.bytes_copied
            replica.bytes_skipped += outcome.bytes_skipped + outcome.bytes_mounted
            REPLICATED_BYTES.labels(location.region, "copied").inc(outcome.bytes_copied)
            REPLICATED_BYTES.labels(location.region, "skipped").inc(outcome.bytes_skipped)
            REPLICATED_BYTES.labels(location.region, "mounted").inc(outcome.bytes_mounted)
        await reporter.flush(force=True)

    @staticmethod
    async def _flush_periodically(reporter: Reporter) -> None:
        while True:
            await asyncio.sleep(config.current().status_interval)
            try:
                await reporter.flush()
            except Exception:
                logger.warning("progress write failed", exc_info=True)

    @staticmethod
    def _completed_region(reporter: Reporter, region: str) -> None:
        layout = reporter.layouts.get(region)
        if layout is None:
            return
        if all(reporter.replica(loc).state == "Completed" for loc in layout.locations):
            began = reporter.started.pop(region, None)
            if began is not None:
                REPLICATION_DURATION.labels(region).observe(time.monotonic() - began)


@kopf.daemon(*VERSIONS, cancellation_timeout=30.0)
async def publication(
    stopped: Any, name: str, namespace: Any, meta: Any, logger: Any, **_: Any
) -> None:
    """Publish and replicate one version; sleep until its spec changes or a resync is due."""
    publication_ = Publication(namespace, name)
    failures = 0
    while not stopped:
        generation = meta.get("generation")
        try:
            wait = await publication_.run_once()
            failures = 0
        except asyncio.CancelledError:
            raise
        except Exception:
            failures += 1
            wait = backoff(failures)
            logger.exception("replication pass failed; retrying in %.0fs", wait)
        deadline = time.monotonic() + wait
        while not stopped and time.monotonic() < deadline:
            if meta.get("generation") != generation:
                break
            await stopped.wait(1.0)


async def users_of(namespace: str, definition: str, version: str) -> list[str]:
    """ScaleSets that run (or are moving to) this version."""
    users = []
    async for obj in kube.client().list(ScaleSet, namespace=namespace):
        s = as_dict(obj)
        if ((s.get("spec") or {}).get("imageReference") or {}).get(
            "imageDefinitionName"
        ) != definition:
            continue
        status = s.get("status") or {}
        versions = {status.get("currentVersion"), status.get("targetVersion")}
        versions |= {
            v.get("version") for v in status.get("instancesByVersion") or [] if v.get("instances")
        }
        if version in versions:
            users.append(s["metadata"]["name"])
    return sorted(users)


@kopf.on.delete(*VERSIONS)
async def delete_version(
    body: Any, spec: Any, status: Any, meta: Any, name: str, namespace: Any, **_: Any
) -> None:
    """Delete every copy, unless a ScaleSet still runs the version (then hold, and retry)."""
    definition, version = spec.get("imageDefinitionName", ""), spec.get("version", "")
    users = await users_of(namespace, definition, version)
    end_of_life = (spec.get("publishingProfile") or {}).get("endOfLifeDate")
    blocked = (spec.get("safetyProfile") or {}).get("blockDeletionBeforeEndOfLife") and end_of_life
    held_reason = held_message = ""
    if users:
        held_reason = cond.IN_USE
        held_message = f"deletion held: ScaleSet(s) {', '.join(users)} still run version {version}"
    elif blocked and datetime.fromisoformat(str(end_of_life).replace("Z", "+00:00")) > utcnow():
        held_reason = cond.BEFORE_END_OF_LIFE
        held_message = f"deletion held until the end-of-life date {end_of_life}"
    if held_reason:
        if condition_reason(status, cond.DELETION_HELD) != ("True", held_reason):
            kopf.warn(body, reason=held_reason, message=held_message)
        await kube.patch_status(
            ImageVersion,
            name,
            {
                "conditions": conditions(
                    status,
                    meta.get("generation"),
                    [(cond.DELETION_HELD, "True", held_reason, held_message)],
                )
            },
            namespace,
        )
        raise kopf.TemporaryError(held_message, delay=10)
    digest = status.get("sourceDigest")
    repository = status.get("repository")
    if digest and repository:
        regions = await read_regions()
        for line in (status.get("replicationStatus") or {}).get("summary") or []:
            region = regions.get(line["region"])
            for replica in line.get("replicas") or []:
                endpoint = region.endpoint(replica["registry"]) if region else None
                if endpoint is None:
                    continue
                try:
                    await registries.delete_image(endpoint, repository, digest)
                except registries.RegistryError as error:
                    if error.permanent:
                        continue  # nothing more can be done there; do not block deletion
                    raise kopf.TemporaryError(
                        f"deleting the copy in {line['region']}/{replica['registry']}: {error}",
                        delay=10,
                    ) from error
                forget_replication_state(namespace, definition, version, line["region"])
    if definition:
        await refresh_definition(namespace, definition)
