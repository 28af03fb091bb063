"""Sending a replication plan to the registries: remove, verify, copy.

Rules of this module:
- Concurrency: at most `replication_concurrency` versions copy at once, at most
  `namespace_replication_concurrency` of them from one namespace (its slot is taken
  before a global one, so a namespace at its limit holds no global slot), and at
  most `region_concurrency` destination registries of one region are written at
  once (`galleon.controllers.shared.ReplicationSlots`; regions taken in a fixed
  order, so two versions cannot deadlock).
- Transient errors (registry down, 5xx, timeouts) show in the replica's message
  ("retrying: ...") and are retried with the daemon loop's capped exponential
  backoff, within the pass while its budget lasts (`galleon.core.pass_budget`:
  attempts per replica, seconds per pass); then the pass ends and releases its
  slots, the replica stays Replicating, and a later pass retries it. Permanent
  errors (unauthorized, not found) fail that replica only, with an Event (one per
  failure: a replica failing again with the same message posts none), and never
  stop the other regions.
- A replica's state moves only as `galleon.core.replica_states` allows.
- Progress is written at most every `status_interval` seconds while bytes flow,
  and at once on every state change but one: a copy's start (Replicating) is
  written by the progress flush, so a copy that ends within `status_interval` goes
  from Queued to its outcome in one write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kopf

from galleon import clock
from galleon.api.imageversion import ImageVersionSpec
from galleon.api.region import RegistryEndpoint, endpoints_of
from galleon.controllers import registries
from galleon.controllers.imageversion.status_writer import StatusWriter, VersionDeleting
from galleon.controllers.loop import backoff
from galleon.controllers.shared import Runtime
from galleon.core import reasons
from galleon.core.imageversion_status import MAX_REPLICA_MESSAGE, ReplicationRecord
from galleon.core.pass_budget import PassBudget, retried_in_this_pass
from galleon.core.replication import Location
from galleon.metrics import (
    REPLICATED_BYTES,
    REPLICATION_DURATION,
    REPLICATION_ERRORS,
    region_label,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegionInfo:
    """A Region as replication needs it: registries by name, in the Region's order."""

    name: str
    endpoints: tuple[RegistryEndpoint, ...]
    by_agent: bool = False
    """Copies into it are made by its region agent (`replication.copiedBy: RegionAgent`)."""

    def endpoint(self, registry: str) -> RegistryEndpoint | None:
        return next((e for e in self.endpoints if e.name == registry), None)

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> RegionInfo:
        spec = obj.get("spec") or {}
        usable, _ = endpoints_of(spec)  # the Region reports the others
        copied_by = (spec.get("replication") or {}).get("copiedBy", "Operator")
        return cls(obj["metadata"]["name"], usable, by_agent=copied_by == "RegionAgent")


class Replicator:
    """Removes, verifies and copies the replicas of one version in one pass."""

    def __init__(
        self,
        body: Any,
        spec: ImageVersionSpec,
        runtime: Runtime,
        record: ReplicationRecord,
        writer: StatusWriter,
        regions: Mapping[str, RegionInfo],
        repository: str,
        digest: str,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """`sleep` waits out the backoff between two attempts of a pass (tests count it)."""
        self.body, self.spec, self.runtime = body, spec, runtime
        self.record, self.writer, self.regions = record, writer, regions
        self.repository, self.digest = repository, digest
        self.namespace = body["metadata"]["namespace"]
        self._started: dict[str, float] = {}
        self.failed_before: dict[Location, str] = {}
        self.staged: RegistryEndpoint | None = None
        """The home region registry a build staged the source in (`registries.staged_endpoint`)."""
        """Replicas recorded Failed before this pass (set by the caller from the status
        as read, before the plan re-queues them), with their message: failing again the
        same way is not news, and posts no second Event."""
        self._sleep = sleep
        config = runtime.config
        self.budget = PassBudget(config.copy_attempts_per_pass, config.retry_seconds_per_pass)

    def _endpoint(self, location: Location) -> RegistryEndpoint | None:
        region = self.regions.get(location.region)
        return region.endpoint(location.registry) if region else None

    async def remove(self, locations: Sequence[Location]) -> None:
        """Delete the copies at `locations`; a failed removal is Failed, and retried."""
        if not locations:
            return
        for location in locations:
            self.record.replica(location).move("Removing")
        await self.writer.flush(self.record, force=True)
        for location in locations:
            replica = self.record.replica(location)
            endpoint = self._endpoint(location)
            try:
                if endpoint is not None:
                    await self.runtime.registries.delete_image(
                        endpoint, self.repository, self.digest
                    )
            except registries.RegistryError as error:
                replica.move("Failed", f"removal failed: {error}")
                REPLICATION_ERRORS.labels(region_label(location.region), error.reason).inc()
                continue
            del self.record.replicas[location]
        await self.writer.flush(self.record, force=True)

    async def verify(self, locations: Sequence[Location]) -> list[Location]:
        """Replicas recorded Completed whose manifest has vanished: queued again."""
        missing = []
        for location in locations:
            endpoint = self._endpoint(location)
            try:
                present = endpoint is not None and await self.runtime.registries.has_manifest(
                    endpoint, self.repository, self.digest
                )
            except registries.RegistryError:
                continue  # cannot tell now; the next resync checks again
            if not present:
                self.record.replica(location).move("Queued")
                missing.append(location)
        return missing

    async def copy(self, pending: Sequence[Location]) -> dict[Location, int]:
        """Copy to every pending location, a fan-out per batch, retrying transient
        failures while the pass's budget lasts; return the attempts made per location.

        Each replica ends the pass Completed, Failed, or (budget spent) Replicating
        with its "retrying: ..." message, for a later pass. Example, with the default
        budget (3 attempts) and a source answering 503: attempt, ~1 s, attempt, ~2 s,
        attempt, and the pass ends holding no slot, returning {location: 3}.
        """
        attempts: dict[Location, int] = {}
        remaining = sorted(set(pending))
        name = f"{self.namespace}/{self.body['metadata']['name']}"
        asked = clock.monotonic()
        async with self.runtime.replication.version(self.namespace):
            began = clock.monotonic()
            logger.info(
                "replication: %s: copy slot after %.1fs; %d replicas to copy",
                name,
                began - asked,
                len(remaining),
            )
            while remaining:
                batch = self._take_batch(remaining)
                for location in batch:
                    self._started.setdefault(location.region, clock.monotonic())
                    attempts[location] = attempts.get(location, 0) + 1
                await self._copy_batch(batch)
                failing = []
                for location in batch:
                    replica = self.record.replica(location)
                    if replica.state == "Completed":
                        self._observe_region_done(location.region)
                    elif replica.retrying:
                        failing.append(location)
                remaining = sorted(set(remaining) - set(batch))
                if not failing:
                    continue
                # Other batches still to send: the failed ones follow them without a wait.
                wait = 0.0 if remaining else backoff(max(attempts[loc] for loc in failing))
                again = retried_in_this_pass(
                    self.budget,
                    attempts,
                    failing,
                    elapsed=clock.monotonic() - began,
                    wait=wait,
                )
                remaining = sorted(set(remaining) | set(again))
                if again and wait:
                    await self._sleep(wait)
        return attempts

    def _take_batch(self, remaining: Sequence[Location]) -> list[Location]:
        """At most `region_concurrency` destinations per region in one fan-out."""
        limit = self.runtime.config.region_concurrency
        per_region: dict[str, int] = {}
        batch = []
        for location in remaining:
            if per_region.get(location.region, 0) < limit:
                per_region[location.region] = per_region.get(location.region, 0) + 1
                batch.append(location)
        return batch

    async def _copy_batch(self, batch: Sequence[Location]) -> None:
        destinations = []
        for location in batch:
            endpoint = self._endpoint(location)
            assert endpoint is not None  # the layout only names existing registries
            destinations.append(registries.Destination(location, endpoint))
            self.record.replica(location).move("Replicating")
        # Written by the periodic flush once the copy has run a status interval: a copy
        # that ends sooner goes from Queued to its outcome in one write.
        self.writer.touch()

        def progress(location: Location, done: int, total: int) -> None:
            replica = self.record.replica(location)
            replica.bytes_done, replica.bytes_total = done, total
            self.writer.touch()

        asked = clock.monotonic()
        async with self.runtime.replication.regions(
            (d.location.region for d in destinations), self.namespace
        ):
            logger.info(
                "replication: %s/%s: region slots after %.1fs; copying to %s",
                self.namespace,
                self.body["metadata"]["name"],
                clock.monotonic() - asked,
                ", ".join(f"{d.location.region}/{d.location.registry}" for d in destinations),
            )
            flusher = asyncio.create_task(self._flush_periodically())
            try:
                results = await self._fan_out(destinations, progress)
            finally:
                flusher.cancel()
        for location, outcome in results.items():
            self._record_outcome(location, outcome)
        await self.writer.flush(self.record, force=True)

    async def _fan_out(
        self,
        destinations: Sequence[registries.Destination],
        progress: Callable[[Location, int, int], None],
    ) -> dict[Location, Any]:
        """The batch's copies: the operator's own fan-out for its regions, and a task
        for the agent of each region that copies by its agent, all at once."""
        own = [d for d in destinations if not self._by_agent(d.location.region)]
        by_region: dict[str, list[registries.Destination]] = {}
        for d in destinations:
            if self._by_agent(d.location.region):
                by_region.setdefault(d.location.region, []).append(d)
        copies: list[Awaitable[Mapping[Location, Any]]] = [
            self.runtime.agents.fan_out(
                self.body,
                region,
                members,
                self.repository,
                self.digest,
                [self.spec.version],
                progress,
            )
            for region, members in sorted(by_region.items())
        ]
        if own:
            copies.append(
                self.runtime.registries.fan_out(
                    self.spec.source,
                    self.namespace,
                    self.digest,
                    own,
                    self.repository,
                    tags=[self.spec.version],
                    progress=progress,
                    staged=self.staged,
                )
            )
        results: dict[Location, Any] = {}
        for outcome in await asyncio.gather(*copies):
            results.update(outcome)
        return results

    def _by_agent(self, region: str) -> bool:
        info = self.regions.get(region)
        return info is not None and info.by_agent

    def _record_outcome(self, location: Location, outcome: Any) -> None:
        replica = self.record.replica(location)
        if isinstance(outcome, registries.RegistryError):
            REPLICATION_ERRORS.labels(region_label(location.region), outcome.reason).inc()
            if outcome.permanent:
                message = f"{outcome.reason}: {outcome}"
                replica.move("Failed", message)
                if self.failed_before.get(location) == message[:MAX_REPLICA_MESSAGE]:
                    return  # the same failure as before this pass: its Event is posted
                kopf.warn(
                    self.body,
                    reason=reasons.REPLICATION_FAILED,
                    message=f"{location.region}/{location.registry}: {outcome}",
                )
            else:
                replica.retry(f"{outcome.reason}: {outcome}")
            return
        replica.move("Completed", "")
        replica.digest = outcome.digest
        replica.bytes_done = replica.bytes_total = outcome.bytes_total
        replica.bytes_copied += outcome.bytes_copied
        replica.bytes_skipped += outcome.bytes_skipped + outcome.bytes_mounted
        REPLICATED_BYTES.labels(region_label(location.region), "copied").inc(outcome.bytes_copied)
        REPLICATED_BYTES.labels(region_label(location.region), "skipped").inc(outcome.bytes_skipped)
        REPLICATED_BYTES.labels(region_label(location.region), "mounted").inc(outcome.bytes_mounted)

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.runtime.config.status_interval)
            try:
                await self.writer.flush(self.record)
            except VersionDeleting:
                return  # the deletion stops the pass; no more progress to write
            except Exception:
                logger.warning("progress write failed", exc_info=True)

    def _observe_region_done(self, region: str) -> None:
        if self.record.region_complete(region):
            began = self._started.pop(region, None)
            if began is not None:
                REPLICATION_DURATION.labels(region_label(region)).observe(clock.monotonic() - began)
