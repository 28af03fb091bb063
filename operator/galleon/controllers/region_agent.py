"""A region's replication agent (`galleon-region-agent --region NAME`): it runs in the
region (in production a Deployment on the region's nodes, `regionAgents` in the
chart), takes the ReplicationTasks the operator hands out for its region, pulls each
image from its source once and writes it to the region's registries over the region's
own network, and reports each copy's progress and outcome in the task's status.

Rules of this module:
- The agent copies only what a task names and only as the operator would: the source
  comes from the ImageVersion (whose UID must be the task's), the registries' URLs and
  credentials from the Region (by name); the same copier, address policy and secret
  rules as the operator's (`galleon.controllers.registries`): digests verified, blobs
  already present skipped (so a copy cut off by a restart goes on where it stopped).
- One agent per region (the chart's Deployment uses the Recreate strategy). A task
  whose status names another agent that wrote less than `stale_after` seconds ago is
  left to it; any other task not Done for its generation is taken, including one a
  previous incarnation of this agent was copying when it stopped.
- A taken task is said at once (`phase: Running`, replicas Queued) and its heartbeat
  is written every `status_interval` seconds until it is Done, queued or copying, so
  the operator can tell a slow copy from a dead agent.
- A new generation (the operator's next attempt) cancels the copy of the older one and
  starts again; a deleted task cancels its copy, and once the copy has stopped the
  agent takes the task's finalizer off (`agent_tasks.FINALIZER`): until then the
  operator does not remove the version's copies.
- Tasks come from a watch of the agent's namespace filtered by its region's label,
  backed by a LIST every `RESYNC_SECONDS` (nothing is lost when the watch breaks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lightkube.core.exceptions import ApiError
from pydantic import ValidationError

from galleon import clock, memory
from galleon.api.imageversion import ImageVersionSpec
from galleon.api.region import endpoints_of
from galleon.controllers.agent_dispatch import release_task
from galleon.controllers.common import as_dict
from galleon.controllers.registries import Destination, Registries, RegistryError
from galleon.core import agent_tasks, times
from galleon.core.replication import Location
from galleon.kube import client as kube
from galleon.kube.resources import ImageVersion, Region, ReplicationTask

logger = logging.getLogger(__name__)
RESYNC_SECONDS = 10.0
WATCH_BACKOFF_SECONDS = 2.0
MESSAGE_MAX = 1024


@dataclass
class Held:
    """A task this agent works on: the generation it took and the work."""

    generation: int
    work: asyncio.Task[None]


class RegionAgent:
    """Takes and carries out the ReplicationTasks of one region."""

    def __init__(
        self,
        region: str,
        namespace: str,
        registries: Registries,
        identity: str,
        *,
        concurrency: int = 2,
        status_interval: float = 2.0,
        stale_after: float = 30.0,
    ) -> None:
        self.region, self.namespace, self.registries = region, namespace, registries
        self.identity = identity
        self.status_interval, self.stale_after = status_interval, stale_after
        self.slots = asyncio.Semaphore(max(1, concurrency))
        self.held: dict[str, Held] = {}
        self.releasing: dict[str, asyncio.Task[None]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Take tasks until `stop` is set; then cancel what runs."""
        watcher = asyncio.create_task(self._watch())
        try:
            while not stop.is_set():
                with contextlib.suppress(Exception):
                    await self._resync()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RESYNC_SECONDS)
        finally:
            watcher.cancel()
            for held in list(self.held.values()):
                held.work.cancel()
            await asyncio.gather(
                watcher,
                *(h.work for h in self.held.values()),
                *self.releasing.values(),
                return_exceptions=True,
            )

    async def _resync(self) -> None:
        seen = set()
        async for task in kube.client().list(
            ReplicationTask,
            namespace=self.namespace,
            labels={agent_tasks.REGION_LABEL: self.region},
        ):
            body = as_dict(task)
            seen.add(body["metadata"]["name"])
            self.consider(body)
        for name in set(self.held) - seen:
            self.held.pop(name).work.cancel()  # deleted while the watch was down

    async def _watch(self) -> None:
        while True:
            try:
                async for kind, task in kube.client().watch(
                    ReplicationTask,
                    namespace=self.namespace,
                    labels={agent_tasks.REGION_LABEL: self.region},
                ):
                    body = as_dict(task)
                    if kind == "DELETED":
                        held = self.held.pop(body["metadata"]["name"], None)
                        if held is not None:
                            held.work.cancel()
                    else:
                        self.consider(body)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("region agent %s: watch ended (%s); again", self.region, error)
            await asyncio.sleep(WATCH_BACKOFF_SECONDS)

    def consider(self, task: Mapping[str, Any]) -> None:
        """Take the task when it is for this agent to do now."""
        name = task["metadata"]["name"]
        generation = int(task["metadata"].get("generation") or 0)
        held = self.held.get(name)
        if task["metadata"].get("deletionTimestamp"):
            if name not in self.releasing:
                self.releasing[name] = asyncio.create_task(self._release(name))
            return
        if held is not None and not held.work.done():
            if held.generation == generation:
                return
            held.work.cancel()  # the operator's next attempt: start again
        if agent_tasks.done(task) or (task.get("spec") or {}).get("region") != self.region:
            return
        if self._taken_by_another(task):
            return
        work = asyncio.create_task(self._carry_out(name, generation, task))
        self.held[name] = Held(generation, work)

    async def _release(self, name: str) -> None:
        """Stop the copy of a deleted task, then let the task go."""
        try:
            held = self.held.pop(name, None)
            if held is not None:
                held.work.cancel()
                await asyncio.gather(held.work, return_exceptions=True)
            try:
                await release_task(name, self.namespace)
            except ApiError as error:
                if error.status.code != 404:
                    logger.warning("region agent %s: could not release %s: %s",
                                   self.region, name, error)  # fmt: skip
            else:
                logger.info("region agent %s: task %s withdrawn", self.region, name)
        finally:
            self.releasing.pop(name, None)

    def _taken_by_another(self, task: Mapping[str, Any]) -> bool:
        status = task.get("status") or {}
        if not agent_tasks.answered(task) or status.get("agent") in ("", None, self.identity):
            return False
        beat = times.parse_or_none(status.get("heartbeatTime"))
        return beat is not None and (clock.now() - beat).total_seconds() < self.stale_after

    async def _carry_out(self, name: str, generation: int, task: Mapping[str, Any]) -> None:
        spec = task.get("spec") or {}
        registries = list(spec.get("registries") or [])
        replicas: dict[str, dict[str, Any]] = {
            r: {"registry": r, "state": "Queued"} for r in registries
        }
        started = times.format(clock.now())

        async def write(phase: str) -> None:
            await kube.patch_status(
                ReplicationTask,
                name,
                {
                    "observedGeneration": generation,
                    "phase": phase,
                    "agent": self.identity,
                    "startTime": started,
                    "heartbeatTime": times.format(clock.now()),
                    "replicas": list(replicas.values()),
                },
                self.namespace,
            )

        async def beat() -> None:
            while True:
                await asyncio.sleep(self.status_interval)
                with contextlib.suppress(Exception):
                    await write("Running")

        try:
            await write("Running")
            logger.info(
                "region agent %s: task %s (generation %d) taken", self.region, name, generation
            )
            heart = asyncio.create_task(beat())
            try:
                async with self.slots:
                    await self._copy(spec, replicas)
            finally:
                heart.cancel()
            await write("Done")
            logger.info(
                "region agent %s: task %s (generation %d) done", self.region, name, generation
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:  # said on the task: the operator retries the copies
            logger.exception("region agent %s: task %s failed", self.region, name)
            for replica in replicas.values():
                if replica["state"] not in ("Completed", "Failed"):
                    replica.update(
                        state="Failed",
                        reason="AgentError",
                        message=f"the region agent failed: {error}"[:MESSAGE_MAX],
                        permanent=False,
                    )
            with contextlib.suppress(Exception):
                await write("Done")
        finally:
            held = self.held.get(name)
            if held is not None and held.work is asyncio.current_task():
                del self.held[name]

    async def _copy(self, spec: Mapping[str, Any], replicas: dict[str, dict[str, Any]]) -> None:
        """Copy as the task says, updating `replicas` (each ends Completed or Failed)."""

        def fail(registry: str, reason: str, message: str, permanent: bool) -> None:
            replicas[registry].update(
                state="Failed", reason=reason, message=message[:MESSAGE_MAX], permanent=permanent
            )

        ref = spec.get("imageVersion") or {}
        version = await kube.get_or_none(ImageVersion, ref.get("name", ""), ref.get("namespace"))
        version_body = as_dict(version) if version is not None else None
        if version_body is None or version_body["metadata"].get("uid") != ref.get("uid"):
            for registry in replicas:
                fail(registry, "NotFound", "the task's ImageVersion no longer exists", True)
            return
        try:
            source = ImageVersionSpec.model_validate(version_body["spec"]).source
        except ValidationError as error:
            for registry in replicas:
                fail(registry, "InvalidSpec", f"the ImageVersion's spec: {error}", True)
            return
        region = await kube.get_or_none(Region, self.region)
        endpoints = {}
        if region is not None:
            usable, _ = endpoints_of(as_dict(region).get("spec") or {})
            endpoints = {e.name: e for e in usable}
        destinations = []
        for registry in replicas:
            endpoint = endpoints.get(registry)
            if endpoint is None:
                fail(
                    registry,
                    "RegistryNotFound",
                    f"region {self.region} has no registry {registry}",
                    False,
                )
            else:
                destinations.append(Destination(Location(self.region, registry), endpoint))
                replicas[registry]["state"] = "Replicating"
        if not destinations:
            return

        def progress(location: Location, done: int, total: int) -> None:
            replicas[location.registry].update(bytesDone=done, bytesTotal=total)

        results = await self.registries.fan_out(
            source,
            ref["namespace"],
            str(spec["digest"]),
            destinations,
            str(spec["repository"]),
            tags=list(spec.get("tags") or []),
            progress=progress,
        )
        for location, outcome in results.items():
            if isinstance(outcome, RegistryError):
                fail(location.registry, outcome.reason, str(outcome), outcome.permanent)
                continue
            replicas[location.registry].update(
                state="Completed",
                digest=outcome.digest,
                bytesDone=outcome.bytes_total,
                bytesTotal=outcome.bytes_total,
                bytesCopied=outcome.bytes_copied,
                bytesSkipped=outcome.bytes_skipped + outcome.bytes_mounted,
            )


async def run(
    region: str, namespace: str, registries: Registries, identity: str, **options: Any
) -> None:
    """Run the agent until SIGINT or SIGTERM."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    agent = RegionAgent(region, namespace, registries, identity, **options)
    logger.info("region agent %s (%s) takes tasks in namespace %s", region, identity, namespace)
    try:
        async with memory.trimming():
            await agent.run(stop)
    finally:
        with contextlib.suppress(ApiError, Exception):
            await kube.close()
