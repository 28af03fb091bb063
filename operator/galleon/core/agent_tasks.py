"""ReplicationTasks as the operator and a region's agent read them: the task's name,
the document the operator writes, what the agent's status says about each copy, and
when a task waited on has gone silent.

Rules of this module:
- One task per (ImageVersion UID, region): its name is a hash of both, so a restarted
  operator finds the task it handed out, and a version created again under the same
  name gets another task.
- A task's outcome is read only from a status that answers the spec's generation
  (`observedGeneration`) and says `Done`; before that it only gives progress.
- A task nobody took (no status for its generation) or whose agent stopped writing
  (`heartbeatTime`) for longer than the operator's agent timeout is a transient
  failure of every copy in it: the operator retries, as it retries a registry that
  does not answer.
- A task carries the `FINALIZER` while an agent may be copying it: the agent takes it
  off once its copy of a deleted task has stopped, so a deleted ImageVersion's copies
  are removed only after nothing can push them again. The operator takes it off
  itself from a task nobody works on (`withdrawable`: never taken, Done, or its agent
  silent for the agent timeout).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from galleon import GROUP, VERSION
from galleon.core import times

REGION_LABEL = "galleon.dev/region"
VERSION_UID_LABEL = "galleon.dev/image-version-uid"
AGENT_UNAVAILABLE = "AgentUnavailable"
FINALIZER = "galleon.dev/region-agent"


def task_name(region: str, version_uid: str) -> str:
    """The name of the task of one version in one region (at most 63 characters).

    >>> task_name("eastus2", "0d6c1f1e-aaaa-bbbb-cccc-123456789012")
    'eastus2-f4c9326b9028e45a'
    """
    digest = hashlib.sha256(f"{region}/{version_uid}".encode()).hexdigest()[:16]
    return f"{region[:46]}-{digest}"


def task_document(
    namespace: str,
    version: Mapping[str, Any],
    region: str,
    registries: Sequence[str],
    digest: str,
    repository: str,
    tags: Sequence[str],
    attempt: int,
) -> dict[str, Any]:
    """The task the operator applies for `version` (an ImageVersion dict)."""
    meta = version["metadata"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ReplicationTask",
        "metadata": {
            "name": task_name(region, meta["uid"]),
            "namespace": namespace,
            "labels": {REGION_LABEL: region, VERSION_UID_LABEL: meta["uid"]},
            "finalizers": [FINALIZER],
        },
        "spec": {
            "imageVersion": {
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
            "region": region,
            "registries": sorted(registries),
            "digest": digest,
            "repository": repository,
            "tags": list(tags),
            "attempt": attempt,
        },
    }


@dataclass(frozen=True)
class CopyOutcome:
    """A copy the agent reports Completed (the attributes the replica record reads)."""

    digest: str
    bytes_total: int
    bytes_copied: int
    bytes_skipped: int
    bytes_mounted: int = 0


@dataclass(frozen=True)
class CopyFailure:
    """A copy the agent reports Failed, or a task that went unanswered."""

    reason: str
    message: str
    permanent: bool


def answered(task: Mapping[str, Any]) -> bool:
    """Whether the task's status answers its spec's current generation."""
    status = task.get("status") or {}
    generation = (task.get("metadata") or {}).get("generation")
    return generation is not None and status.get("observedGeneration") == generation


def done(task: Mapping[str, Any]) -> bool:
    return answered(task) and (task.get("status") or {}).get("phase") == "Done"


def progress(task: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """Registry → (bytes done, bytes total), from a status of the current generation."""
    if not answered(task):
        return {}
    return {
        r["registry"]: (int(r.get("bytesDone", 0)), int(r.get("bytesTotal", 0)))
        for r in (task.get("status") or {}).get("replicas") or []
        if r.get("registry")
    }


def outcomes(task: Mapping[str, Any], registries: Sequence[str]) -> dict[str, Any]:
    """Registry → CopyOutcome or CopyFailure, from a Done task; a registry the status
    does not mention failed transiently.

    >>> task = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
    ...     "phase": "Done", "replicas": [
    ...     {"registry": "a", "state": "Completed", "digest": "sha256:" + "0" * 64,
    ...      "bytesTotal": 10, "bytesCopied": 10},
    ...     {"registry": "b", "state": "Failed", "reason": "Unauthorized",
    ...      "message": "401", "permanent": True}]}}
    >>> found = outcomes(task, ["a", "b", "c"])
    >>> found["a"].bytes_copied, found["b"].permanent, found["c"].reason
    (10, True, 'AgentUnavailable')
    """
    reported = {r.get("registry"): r for r in (task.get("status") or {}).get("replicas") or []}
    found: dict[str, Any] = {}
    for registry in registries:
        replica = reported.get(registry)
        if replica is not None and replica.get("state") == "Completed" and replica.get("digest"):
            found[registry] = CopyOutcome(
                digest=str(replica["digest"]),
                bytes_total=int(replica.get("bytesTotal", 0)),
                bytes_copied=int(replica.get("bytesCopied", 0)),
                bytes_skipped=int(replica.get("bytesSkipped", 0)),
            )
        elif replica is not None and replica.get("state") == "Failed":
            found[registry] = CopyFailure(
                str(replica.get("reason") or "ProtocolError"),
                str(replica.get("message") or "the region's agent failed the copy"),
                bool(replica.get("permanent")),
            )
        else:
            found[registry] = CopyFailure(
                AGENT_UNAVAILABLE, "the region's agent ended the task without this copy", False
            )
    return found


def silence(
    task: Mapping[str, Any] | None, handed_at: datetime, now: datetime, timeout: float
) -> str | None:
    """Why the task counts as unanswered now (None while it does not): nobody took
    its generation within `timeout` seconds of `handed_at`, or its agent has not
    written for `timeout` seconds.

    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> silence({"metadata": {"generation": 2}}, t0, t0 + timedelta(seconds=61), 60)[:20]
    'no replication agent'
    >>> beat = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
    ...     "phase": "Running", "agent": "a-1", "heartbeatTime": "2026-01-01T00:00:30Z"}}
    >>> silence(beat, t0, t0 + timedelta(seconds=60), 60) is None
    True
    >>> silence(beat, t0, t0 + timedelta(seconds=91), 60)[:24]
    'the replication agent a-'
    """
    if task is None or not answered(task):
        if (now - handed_at).total_seconds() > timeout:
            return f"no replication agent took the copy within {timeout:.0f}s"
        return None
    status = task.get("status") or {}
    if status.get("phase") == "Done":
        return None
    beat = times.parse_or_none(status.get("heartbeatTime")) or handed_at
    quiet = (now - max(beat, handed_at)).total_seconds()
    if quiet > timeout:
        return (
            f"the replication agent {status.get('agent') or '(unnamed)'} has not reported "
            f"for {quiet:.0f}s"
        )
    return None


def withdrawable(task: Mapping[str, Any], now: datetime, timeout: float) -> bool:
    """Whether no agent can be copying the task now: it is Done, or no agent has
    written on it (whatever the generation) for `timeout` seconds.

    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> withdrawable({"metadata": {"generation": 1}}, t0, 60)
    True
    >>> beat = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
    ...     "phase": "Running", "agent": "a-1", "heartbeatTime": "2026-01-01T00:00:30Z"}}
    >>> withdrawable(beat, t0 + timedelta(seconds=60), 60)
    False
    >>> withdrawable(beat, t0 + timedelta(seconds=91), 60)
    True
    >>> beat["metadata"]["generation"] = 2  # the next attempt, not taken yet
    >>> withdrawable(beat, t0 + timedelta(seconds=60), 60)
    False
    """
    if done(task):
        return True
    beat = times.parse_or_none((task.get("status") or {}).get("heartbeatTime"))
    return beat is None or (now - beat).total_seconds() > timeout
