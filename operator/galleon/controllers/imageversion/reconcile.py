"""One pass of publishing and replicating one ImageVersion: parents → conflict →
source → plan → remove → verify → copy → status.

Rules of this module:
- The source digest is resolved once and recorded in status; it is never
  resolved again, so every replica is the same image.
- All progress lives in `status.replicationStatus`: a restarted operator plans
  from it (`galleon.core.imageversion_status.load_record`), re-copies only
  replicas not recorded Completed at the source digest, and the copier skips blobs
  already present, so nothing completed is copied again.
- Regions and the other versions of the definition come from kopf indexes.
- Permanent problems (unknown region, too few registries, a source that cannot
  be read) fail that region or the version with a condition and one Event; the
  other regions go on. Waiting for a parent is Reconciling, not Stalled: it
  resolves by itself (apply order).
- Copies are made before anything is removed. A replica no longer wanted is
  removed only when the safety profile allows it and nothing still holds its copy
  (an instance pulls it, or another version shares it: `holders`); a held one
  stays Completed, said in ReplicaRemovalHeld, and goes on a later pass once free.
- A pass runs under `Runtime.passes`, so the version's deletion stops it before it
  deletes anything: no copy is pushed after the removal.
- A pass ends when its retry budget is spent (`galleon.core.pass_budget`), even
  with replicas still failing transiently: it returns `Retry`, the daemon loop runs
  the next pass after its backoff, and that pass reads the spec again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from galleon import clock
from galleon.api.imageversion import ImageVersionSpec
from galleon.api.region import RegistryEndpoint
from galleon.controllers import registries
from galleon.controllers.common import as_dict, post_once, report_failure
from galleon.controllers.gallery import refresh_definition
from galleon.controllers.imageversion.apply import RegionInfo, Replicator
from galleon.controllers.imageversion.holders import read_references
from galleon.controllers.imageversion.status_writer import StatusWriter, VersionDeleting
from galleon.controllers.indexes import first
from galleon.controllers.loop import Retry
from galleon.controllers.shared import Runtime
from galleon.core import builds, reasons, references, times
from galleon.core import replication as rep
from galleon.core.conditions import kstatus
from galleon.core.imageversion_status import (
    ReplicationRecord,
    load_record,
    replication_conditions,
)
from galleon.kube import client as kube
from galleon.kube.resources import Gallery, ImageDefinition, ImageVersion
from galleon.metrics import REPLICATION_ERRORS, REPLICATIONS_IN_FLIGHT, region_label

PARENT_RETRY_SECONDS = 10.0
PERMANENT_RETRY_SECONDS = 60.0
HELD_RETRY_SECONDS = 30.0
MAX_REPOSITORY_CHARS = 255
"""The longest repository name the distribution registry accepts."""
GONE_SECONDS = 3600.0

SOURCE_ERROR_REASONS = {
    "NotFound": reasons.SOURCE_NOT_FOUND,
    "Unauthorized": reasons.UNAUTHORIZED,
    "Denied": reasons.UNAUTHORIZED,
}


MAX_SPEC_ERRORS_CHARS = 1024


def spec_errors(error: ValidationError) -> str:
    """What is wrong with a stored spec, field by field, for a condition message."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in ("spec", *item["loc"]))
        parts.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)[:MAX_SPEC_ERRORS_CHARS]


class Publication:
    """Publishes and replicates one ImageVersion, one pass at a time."""

    def __init__(
        self,
        namespace: str,
        name: str,
        runtime: Runtime,
        versions: Mapping[Any, Any],
        regions: Mapping[Any, Any],
        scalesets: Mapping[Any, Any] | None = None,
        definitions: Mapping[Any, Any] | None = None,
        galleries: Mapping[Any, Any] | None = None,
    ) -> None:
        self.namespace, self.name = namespace, name
        self.runtime = runtime
        self.versions_index, self.regions_index = versions, regions
        self.scalesets_index = scalesets or {}
        self.definitions_index, self.galleries_index = definitions or {}, galleries or {}
        self.staged: RegistryEndpoint | None = None

    async def fail(self, error: Exception) -> None:
        """A pass failed in a way no rule foresaw: say so on the ImageVersion."""
        await report_failure(ImageVersion, self.namespace, self.name, error)

    async def run_once(self) -> float | Retry:
        """Do what can be done now; return the seconds until the next pass."""
        try:
            return await self.run_pass()
        except VersionDeleting:
            return GONE_SECONDS  # its deletion takes over

    async def run_pass(self) -> float | Retry:
        obj = await kube.get_or_none(ImageVersion, self.name, self.namespace)
        if obj is None:
            return GONE_SECONDS
        body = as_dict(obj)
        if body["metadata"].get("deletionTimestamp"):
            return GONE_SECONDS
        writer = StatusWriter(body, self.runtime.config.status_interval)
        try:
            spec = ImageVersionSpec.model_validate(body["spec"])
        except ValidationError as error:
            # Stored before a rule the API server now enforces (a source Secret of another
            # namespace): refused here too, so nothing is read; the source is immutable,
            # so the version must be re-created.
            message = spec_errors(error)
            post_once(body, writer.status, reasons.READY, False, reasons.INVALID_SPEC, message)
            await writer.set_conditions(kstatus(False, reasons.INVALID_SPEC, message, stalled=True))
            return PERMANENT_RETRY_SECONDS
        parents = await self.parents(body, writer, spec)
        if parents is None:
            return PARENT_RETRY_SECONDS
        if await self.conflicting(body, writer, spec):
            return PERMANENT_RETRY_SECONDS
        gallery, definition = parents
        repository = rep.repository_path(
            (gallery.get("spec") or {}).get("repositoryPrefix", "galleon"),
            self.namespace,
            gallery["metadata"]["name"],
            definition["metadata"]["name"],
        )
        if len(repository) > MAX_REPOSITORY_CHARS:
            message = (
                f"the repository path {repository[:64]}... is {len(repository)} characters; "
                f"registries accept at most {MAX_REPOSITORY_CHARS}: shorten the gallery's "
                "repositoryPrefix, or the namespace, gallery or definition names"
            )
            post_once(body, writer.status, reasons.READY, False, reasons.INVALID_SPEC, message)
            await writer.set_conditions(kstatus(False, reasons.INVALID_SPEC, message, stalled=True))
            return PERMANENT_RETRY_SECONDS
        self.staged = self.staged_endpoint(spec, gallery, definition)
        digest = await self.source(body, writer, spec, repository)
        if digest is None:
            return PERMANENT_RETRY_SECONDS
        # Run as a pass the version's deletion can stop: nothing is pushed after it.
        wait = await self.runtime.passes.run(
            body["metadata"]["uid"], self.replicate(body, writer, spec, repository, digest)
        )
        return GONE_SECONDS if wait is None else wait

    async def parents(
        self, body: Any, writer: StatusWriter, spec: ImageVersionSpec
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(gallery, definition), or None after saying which one is missing. Read from
        the watches' indexes; a GET only for one they do not hold (yet)."""
        key = (self.namespace, spec.image_definition_name)
        definition: Any = first(self.definitions_index, key)
        if definition is None:
            definition = await kube.get_or_none(
                ImageDefinition, spec.image_definition_name, self.namespace
            )
        gallery: Any = None
        if definition is not None:
            gallery_name = (definition.get("spec") or {}).get("galleryName", "")
            gallery = first(self.galleries_index, (self.namespace, gallery_name))
            if gallery is None:
                gallery = await kube.get_or_none(Gallery, gallery_name, self.namespace)
        if definition is not None and gallery is not None:
            return as_dict(gallery), as_dict(definition)
        if definition is None:
            reason = reasons.DEFINITION_NOT_FOUND
            message = (
                f'image definition "{spec.image_definition_name}" does not exist in namespace '
                f"{self.namespace}; waiting for it"
            )
        else:
            reason = reasons.GALLERY_NOT_FOUND
            message = "the image definition's gallery does not exist; waiting for it"
        post_once(body, writer.status, reasons.PARENT_FOUND, False, reason, message)
        await writer.set_conditions(
            [
                *kstatus(False, reason, message, progressing=True),
                (reasons.PARENT_FOUND, "False", reason, message),
            ]
        )
        return None

    async def conflicting(self, body: Any, writer: StatusWriter, spec: ImageVersionSpec) -> bool:
        """Another (older) ImageVersion already publishes this version of the definition."""
        mine = (body["metadata"]["creationTimestamp"], self.name)
        key = (self.namespace, spec.image_definition_name)
        for other in self.versions_index.get(key, ()):
            meta = other["metadata"]
            if (other.get("spec") or {}).get("version") != spec.version:
                continue
            theirs = (meta["creationTimestamp"], meta["name"])
            if theirs < mine and not meta.get("deletionTimestamp"):
                message = (
                    f"version {spec.version} of {spec.image_definition_name} is already "
                    f'published by ImageVersion "{theirs[1]}"; delete this one or change its '
                    "version"
                )
                post_once(
                    body, writer.status, reasons.READY, False, reasons.VERSION_CONFLICT, message
                )
                await writer.set_conditions(
                    kstatus(False, reasons.VERSION_CONFLICT, message, stalled=True)
                )
                return True
        return False

    async def source(
        self, body: Any, writer: StatusWriter, spec: ImageVersionSpec, repository: str
    ) -> str | None:
        """The source digest: as recorded, or resolved now (once) and recorded."""
        recorded = writer.status.get("sourceDigest")
        if recorded:
            return str(recorded)
        try:
            resolved = await self.runtime.registries.resolve_source(
                spec.source, self.namespace, self.staged
            )
        except registries.RegistryError as error:
            reason = SOURCE_ERROR_REASONS.get(
                error.reason,
                reasons.REGISTRY_UNAVAILABLE if not error.permanent else error.reason,
            )
            message = f"cannot resolve source {spec.source.image}: {error}"
            post_once(body, writer.status, reasons.SOURCE_RESOLVED, False, reason, message)
            await writer.set_conditions(
                [
                    *kstatus(
                        False,
                        reason,
                        message,
                        progressing=not error.permanent,
                        stalled=error.permanent,
                    ),
                    (reasons.SOURCE_RESOLVED, "False", reason, message),
                ]
            )
            return None
        message = f"{spec.source.image} is {resolved.digest}"
        kopf.info(body, reason=reasons.RESOLVED, message=message)
        # Recorded by the plan's write, before any byte is copied (the digest is what
        # every replica copies, across passes and restarts).
        writer.stage(
            [
                *kstatus(False, reasons.PROGRESSING, "replication starts", progressing=True),
                (reasons.SOURCE_RESOLVED, "True", reasons.RESOLVED, message),
            ],
            sourceDigest=resolved.digest,
            sourceMediaType=resolved.media_type,
            sizeBytes=resolved.size,
            publishedDate=times.format(clock.now()),
            repository=repository,
        )
        return resolved.digest

    def staged_endpoint(
        self, spec: ImageVersionSpec, gallery: Mapping[str, Any], definition: Mapping[str, Any]
    ) -> RegistryEndpoint | None:
        """The home region registry a build of this definition staged the source in, if
        the source is exactly there (see `registries.staged_endpoint`)."""
        gallery_spec = gallery.get("spec") or {}
        home = self.regions().get(str(gallery_spec.get("location", "")))
        if home is None:
            return None
        staging = builds.staging_repository(
            gallery_spec.get("repositoryPrefix", "galleon"),
            self.namespace,
            gallery["metadata"]["name"],
            definition["metadata"]["name"],
        )
        return registries.staged_endpoint(spec.source, staging, home.endpoints)

    def regions(self) -> dict[str, RegionInfo]:
        """Every Region, from the watch-fed index."""
        regions = {name: first(self.regions_index, name) for name in self.regions_index}
        return {name: RegionInfo.from_object(obj) for name, obj in regions.items() if obj}

    async def replicate(
        self, body: Any, writer: StatusWriter, spec: ImageVersionSpec, repository: str, digest: str
    ) -> float | Retry:
        """Plan from the recorded replicas, then remove, verify and copy; `Retry` when
        replicas are still being retried after transient failures."""
        regions = self.regions()
        record = load_record(writer.status)
        record.layouts = rep.layout(
            spec.publishing_profile, {n: [e.name for e in r.endpoints] for n, r in regions.items()}
        )
        plan = rep.plan(
            record.layouts,
            record.recorded(),
            digest,
            allow_deletion=spec.safety_profile.allow_deletion_of_replicated_locations,
        )
        failed_before = {
            location: replica.message
            for location, replica in record.replicas.items()
            if replica.state == "Failed"
        }
        apply_plan_states(record, plan, digest)
        self.report_region_errors(body, writer, record)
        await self.write(body, writer, record, plan)
        replicator = Replicator(
            body, spec, self.runtime, record, writer, regions, repository, digest
        )
        replicator.failed_before = failed_before
        replicator.staged = self.staged
        missing = await replicator.verify(plan.keep)
        pending = [*plan.copy, *missing]
        if pending:
            REPLICATIONS_IN_FLIGHT.inc()
            try:
                await replicator.copy(pending)
            finally:
                REPLICATIONS_IN_FLIGHT.dec()
        # Removal last, once the wanted copies exist, and never of a copy still pulled.
        await self.remove(body, record, replicator, plan, regions, repository, digest)
        await self.write(body, writer, record, plan)
        if writer.writes == 0:
            # A pass that wrote leaves the definition to its write's watch event
            # (`gallery.version_changed`, run once the index holds the write: a refresh
            # from here would read the index before it). One that wrote nothing
            # refreshes it: the resync that mends a refresh that failed.
            await refresh_definition(
                self.namespace,
                spec.image_definition_name,
                self.scalesets_index,
                self.versions_index,
                self.galleries_index,
            )
        retrying = [r for r in record.replicas.values() if r.retrying]
        if retrying:
            wanted = sum(len(layout.locations) for layout in record.layouts.values())
            return Retry(
                f"{self.namespace}/{self.name}: {len(retrying)} of {wanted} replicas retrying "
                f"after transient failures ({retrying[0].message[:200]})"
            )
        if any(r.retained for r in record.replicas.values()):
            return HELD_RETRY_SECONDS  # look again soon: a held copy goes once it is free
        if writer.status["replicationStatus"]["aggregatedState"] == "Completed":
            return self.runtime.config.resync_interval
        return PERMANENT_RETRY_SECONDS

    async def remove(
        self,
        body: Any,
        record: ReplicationRecord,
        replicator: Replicator,
        plan: rep.Plan,
        regions: Mapping[str, RegionInfo],
        repository: str,
        digest: str,
    ) -> None:
        """Remove the unwanted copies nothing holds; keep (retained) the held ones;
        forget those that are a wanted location's copy under another name. In a
        targeted region nothing goes until its wanted copies are all Completed, and
        nothing at all while its layout is in error (a Region with fewer registries
        than asked must not lose the copies it has)."""
        unwanted = [
            loc
            for loc in plan.remove
            if (layout := record.layouts.get(loc.region)) is None
            or (not layout.error_reason and record.region_complete(loc.region))
        ]
        if not unwanted:
            return
        found = await read_references(self.namespace, body["metadata"].get("uid"), regions)
        decided = references.removal(
            unwanted,
            [*plan.keep, *plan.copy],
            found.hosts,
            repository,
            digest,
            found.pods,
            found.versions,
        )
        for location, why in (decided.held or {}).items():
            replica = record.replica(location)
            replica.retained, replica.message = True, f"removal held: pulled by {why}"[:1024]
        for location in decided.forget:
            del record.replicas[location]
        await replicator.remove(decided.delete)

    @staticmethod
    def report_region_errors(body: Any, writer: StatusWriter, record: ReplicationRecord) -> None:
        """Count and post a region's layout error once per failure, not once per pass
        (the status already says it)."""
        lines = {
            line.get("region"): line
            for line in (writer.status.get("replicationStatus") or {}).get("summary") or []
        }
        for layout in record.layouts.values():
            before = lines.get(layout.region) or {}
            already = before.get("state") == "Failed" and layout.error_message in str(
                before.get("details", "")
            )
            if layout.error_reason and not already:
                REPLICATION_ERRORS.labels(region_label(layout.region), layout.error_reason).inc()
                post_once(
                    body,
                    writer.status,
                    reasons.READY,
                    False,
                    layout.error_reason,
                    f"region {layout.region}: {layout.error_message}",
                )

    @staticmethod
    async def write(
        body: Any, writer: StatusWriter, record: ReplicationRecord, plan: rep.Plan
    ) -> None:
        """Post the Events of this pass's conditions, then write state and conditions
        together."""
        updates = replication_conditions(record)
        ready = updates[0]
        if plan.refused:
            refusal = next(u for u in updates if u[0] == reasons.REMOVAL_REFUSED)
            post_once(
                body,
                writer.status,
                reasons.REMOVAL_REFUSED,
                True,
                reasons.REMOVAL_REFUSED,
                refusal[3],
            )
        if ready[1] == "True":
            post_once(body, writer.status, reasons.READY, True, ready[2], ready[3])
        await writer.flush(record, force=True)


def apply_plan_states(record: ReplicationRecord, plan: rep.Plan, digest: str) -> None:
    """The replica states the plan implies before anything is sent: refused replicas
    noted, kept ones Completed, ones to copy Queued (a Failed one at this digest
    stays Failed until it is retried, and one being retried after a transient failure
    stays Replicating with its "retrying: ..." message, so the status goes on saying
    why across passes and restarts)."""
    for location in plan.refused:
        record.refused.setdefault(location.region, []).append(location)
    for location in plan.keep:
        replica = record.replica(location)
        if replica.retained:  # wanted again
            replica.retained, replica.message = False, ""
        replica.move("Completed")
    for location in plan.copy:
        replica = record.replica(location)
        replica.retained = False
        if replica.retrying:
            continue  # the source digest never changes: the next attempt goes on from here
        if replica.state != "Failed" or replica.digest != digest:
            replica.move("Queued", "")
