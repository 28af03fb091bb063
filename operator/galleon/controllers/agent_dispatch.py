"""The operator's side of region agents: a region whose Region says
`replication.copiedBy: RegionAgent` gets its copies as ReplicationTasks (in the
operator's namespace), which its agent (`galleon.controllers.region_agent`) carries
out; the operator waits on each task and reads its progress and outcome as it would
read its own copier's.

Rules of this module:
- `fan_out` has the copier's contract (`Registries.fan_out`): a Location → outcome map,
  an outcome being the copy's result or a `RegistryError`, transient or permanent. So
  the replication pass (states, retries, budget, status) is the same whoever copies.
- A task already Done for the same copy when the pass comes (the operator restarted
  while the agent worked) is taken as this attempt's outcome; one still Running is
  waited on, not handed out again; anything else is handed out as a new attempt
  (`spec.attempt` + 1, a new generation the agent answers).
- The task is deleted once its outcome is taken; a task that went unanswered stays,
  and the next attempt hands it out again.
- A deleted ImageVersion's tasks are withdrawn (`withdraw`) before its copies are
  removed: deleted, and gone only once their agent has stopped copying (it takes the
  finalizer off) or nobody works on them (the operator takes it off).
- The wait is fed by the watch (`observe`, from a kopf event handler) and, when that
  is quiet (an operator that does not watch its own namespace), by a GET every
  `POLL_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lightkube import codecs
from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType

from galleon import clock
from galleon.controllers.common import as_dict
from galleon.controllers.registries import Destination, RegistryError
from galleon.core import agent_tasks
from galleon.core.replication import Location
from galleon.kube import client as kube
from galleon.kube.resources import ReplicationTask

logger = logging.getLogger(__name__)
POLL_SECONDS = 2.0


class AgentReported(RegistryError):
    """A copy's failure as the region's agent reported it (or its silence)."""

    def __init__(self, reason: str, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.reason, self.permanent = reason, permanent


class AgentTasks:
    """The tasks handed to region agents, and the waits on them."""

    def __init__(self, namespace: str, timeout: float) -> None:
        self.namespace, self.timeout = namespace, timeout
        self._seen: dict[str, Mapping[str, Any]] = {}
        self._changed: dict[str, asyncio.Event] = {}

    def observe(self, name: str, namespace: str, body: Mapping[str, Any] | None) -> None:
        """A watch event of a task (None: deleted)."""
        if namespace != self.namespace or name not in self._changed:
            return
        if body is None:
            self._seen.pop(name, None)
        else:
            self._seen[name] = body
        self._changed[name].set()

    async def fan_out(
        self,
        version: Mapping[str, Any],
        region: str,
        destinations: Sequence[Destination],
        repository: str,
        digest: str,
        tags: Sequence[str],
        progress: Callable[[Location, int, int], None],
    ) -> dict[Location, Any]:
        """Have `region`'s agent copy the version to `destinations` (all of `region`)."""
        at = {d.location.registry: d.location for d in destinations}
        registries = sorted(at)
        name = agent_tasks.task_name(region, version["metadata"]["uid"])
        self._changed.setdefault(name, asyncio.Event())
        try:
            task = await self._hand_out(version, region, registries, repository, digest, tags)
            handed_at = clock.now()
            while True:
                for registry, (done, total) in agent_tasks.progress(task).items():
                    if registry in at:
                        progress(at[registry], done, total)
                if agent_tasks.done(task):
                    found = agent_tasks.outcomes(task, registries)
                    await self._delete(name)
                    return {at[r]: self._outcome(region, o) for r, o in found.items()}
                why = agent_tasks.silence(task, handed_at, clock.now(), self.timeout)
                if why is not None:
                    error = AgentReported(
                        agent_tasks.AGENT_UNAVAILABLE, f"region {region}: {why}", False
                    )
                    return dict.fromkeys(at.values(), error)
                task = await self._next(name, task)
        finally:
            self._changed.pop(name, None)
            self._seen.pop(name, None)

    async def _hand_out(
        self,
        version: Mapping[str, Any],
        region: str,
        registries: list[str],
        repository: str,
        digest: str,
        tags: Sequence[str],
    ) -> Mapping[str, Any]:
        """The task to wait on: the one found when it is this copy and Done or being
        worked on, else this copy handed out as a new attempt."""
        name = agent_tasks.task_name(region, version["metadata"]["uid"])
        found = await kube.get_or_none(ReplicationTask, name, self.namespace)
        found_body = as_dict(found) if found is not None else None
        attempt = 1
        if found_body is not None:
            spec = found_body.get("spec") or {}
            same = (
                spec.get("digest") == digest
                and sorted(spec.get("registries") or []) == registries
                and spec.get("repository") == repository
            )
            running = agent_tasks.answered(found_body) and (
                (found_body.get("status") or {}).get("phase") == "Running"
            )
            if same and (agent_tasks.done(found_body) or running):
                return found_body
            attempt = int(spec.get("attempt") or 0) + 1
        document = agent_tasks.task_document(
            self.namespace, version, region, registries, digest, repository, tags, attempt
        )
        applied = await kube.client().apply(codecs.from_dict(document), force=True)
        logger.info(
            "replication: %s/%s: region %s copies by its agent (task %s, attempt %d)",
            version["metadata"]["namespace"], version["metadata"]["name"], region, name, attempt,
        )  # fmt: skip
        return as_dict(applied)

    async def _next(self, name: str, task: Mapping[str, Any]) -> Mapping[str, Any]:
        """The task once it changed (watch) or after `POLL_SECONDS` (GET)."""
        changed = self._changed[name]
        changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout=POLL_SECONDS)
        seen = self._seen.get(name)
        if seen is not None and _generation(seen) >= _generation(task):
            return seen
        fetched = await kube.get_or_none(ReplicationTask, name, self.namespace)
        return as_dict(fetched) if fetched is not None else task

    async def withdraw(self, version_uid: str) -> bool:
        """Delete the version's tasks; True once none is left (no agent copies it)."""
        left = False
        async for task in kube.client().list(
            ReplicationTask,
            namespace=self.namespace,
            labels={agent_tasks.VERSION_UID_LABEL: version_uid},
        ):
            body = as_dict(task)
            name = body["metadata"]["name"]
            if agent_tasks.withdrawable(body, clock.now(), self.timeout):
                await self._delete(name)
            else:  # its agent stops the copy, then takes the finalizer off
                left = True
                if not body["metadata"].get("deletionTimestamp"):
                    await self._delete(name, release=False)
        return not left

    async def _delete(self, name: str, release: bool = True) -> None:
        try:
            if release:
                await release_task(name, self.namespace)
            await kube.client().delete(ReplicationTask, name, namespace=self.namespace)
        except ApiError as error:
            if error.status.code != 404:
                logger.warning("could not delete task %s: %s", name, error)

    @staticmethod
    def _outcome(region: str, outcome: Any) -> Any:
        if isinstance(outcome, agent_tasks.CopyFailure):
            message = outcome.message
            if outcome.reason == agent_tasks.AGENT_UNAVAILABLE:
                message = f"region {region}: {message}"
            return AgentReported(outcome.reason, message, outcome.permanent)
        return outcome


async def release_task(name: str, namespace: str) -> None:
    """Take the agent finalizer off a task (nothing copies it any more)."""
    await kube.client().patch(
        ReplicationTask,
        name,
        {"metadata": {"finalizers": None}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )


def _generation(task: Mapping[str, Any]) -> int:
    return int((task.get("metadata") or {}).get("generation") or 0)
