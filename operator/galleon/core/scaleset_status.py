"""A ScaleSet's whole status, computed from one pass's facts by ordered pure functions.

`scaleset_status(facts)` returns the status the controller writes (once, and only
when it differs from what is recorded); `refused_status(...)` the status of a
ScaleSet whose spec cannot be acted on. Nothing here does I/O or reads a clock.

Rules of this module:
- Order: observedGeneration → counters (replicas, versions) → the running upgrade
  and its history → conditions. Conditions come last because they read the rest.
- One function per condition type, and each always sets it: `set_upgrading`,
  `set_ready` (the kstatus trio Ready/Reconciling/Stalled), `set_degraded`,
  `set_maintenance_window`.
  Reasons are constants of `galleon.core.reasons`; messages carry the numbers.
- Holds (`UpgradeIntent.holds`) are said where they bite: in Upgrading (an
  upgrade that waits to start, or the next batch of a running one), and in Ready
  once a held upgrade sits between batches (Ready False with the hold's reason,
  not Reconciling, as when paused). Maintenance windows that cannot be read are
  bad input: Ready False, Stalled True, until the spec is fixed.
- A fault matters while the ScaleSet still targets the faulted revision (or has no
  target at all): moving the spec on clears it.
- Instances of the running batch are being replaced on purpose: they do not make
  the ScaleSet Degraded; missing instances below capacity do.
- What blocks instances from being created (`blocker`: a refused create, a disk
  conflict, no usable version in the region) is said with its own reason in Ready
  and Degraded alike, never as a bare count; what needs the user to act is Stalled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from galleon.api.scaleset import MAX_UPGRADE_HISTORY, ScaleSetSpec
from galleon.core import instances as inst
from galleon.core import merge_patch, reasons, times
from galleon.core import rollout as ro
from galleon.core.conditions import Update, kstatus, merged
from galleon.core.upgrade_trigger import StartRecord, UpgradeIntent, revision_sort_key
from galleon.core.versions import Resolution


@dataclass(frozen=True)
class ScaleSetFacts:
    """Everything one pass knows that the status is computed from."""

    name: str
    spec: ScaleSetSpec
    generation: int | None
    recorded: Mapping[str, Any]
    """The status as last written (conditions keep their transition times from it)."""
    resolution: Resolution
    """Which version the ScaleSet should run in its region, and why."""
    target: str | None
    """The target revision, when that version has a completed copy in the region."""
    instances: Sequence[ro.Instance]
    rollout: ro.Rollout | None
    """The rollout after this pass's plan (None before the first upgrade)."""
    policy: ro.Policy
    intent: UpgradeIntent
    start: StartRecord
    now: datetime
    missing_images: Sequence[str] = ()
    """Versions the plan wants to create instances of that have no copy in the region."""
    problems: Sequence[tuple[str, str]] = ()
    """(reason, message) of what the last apply could not do (a refused create, a data
    disk conflict)."""
    quarantined: frozenset[str] = frozenset()
    """Versions quarantined by the definition: a fault on the way to one still matters
    after "latest" stepped back from it."""

    @property
    def live(self) -> list[ro.Instance]:
        return [i for i in self.instances if i.exists and not i.deleting]

    def health(self, instance: ro.Instance) -> ro.Health:
        return ro.health(instance, self.policy, self.now)

    @property
    def active(self) -> bool:
        return self.rollout is not None and self.rollout.active

    @property
    def faulted(self) -> bool:
        return (
            self.rollout is not None
            and self.rollout.code == "Faulted"
            and (
                self.target is None
                or self.rollout.to_revision == self.target
                or inst.version_of(self.rollout.to_revision) in self.quarantined
            )
        )

    @property
    def healthy(self) -> int:
        return sum(1 for i in self.live if self.health(i) == "Healthy")

    @property
    def unhealthy(self) -> int:
        """Unhealthy or missing instances below capacity, the running batch aside."""
        replacing = set(self.rollout.members) if self.active and self.rollout else set()
        present = {i.index for i in self.live}
        unhealthy = sum(
            1 for i in self.live if i.index not in replacing and self.health(i) == "Unhealthy"
        )
        missing = sum(
            1 for i in range(self.spec.capacity) if i not in present and i not in replacing
        )
        return unhealthy + missing


def scaleset_status(facts: ScaleSetFacts) -> dict[str, Any]:
    """The status to write, in the module's order."""
    status: dict[str, Any] = {"observedGeneration": facts.generation}
    status.update(counters(facts))
    if facts.rollout is not None:
        upgrade = upgrade_status(facts, facts.rollout)
        status["rollingUpgrade"] = upgrade
        status["upgradeHistory"] = history(facts.recorded, upgrade, facts.rollout, facts.now)
    upgrading = said_refused_controls(facts, set_upgrading(facts))
    status["conditions"] = merged(
        facts.recorded,
        facts.generation,
        [
            *set_ready(facts, upgrading),
            upgrading,
            set_degraded(facts),
            set_maintenance_window(facts),
        ],
        facts.now,
    )
    return status


def refused_status(
    recorded: Mapping[str, Any], generation: int | None, reason: str, message: str, now: datetime
) -> dict[str, Any]:
    """Bad input or a missing dependency: Stalled, nothing changes on the instances."""
    updates = [
        *kstatus(False, reason, message, stalled=True),
        (reasons.UPGRADING, "False", reason, message),
    ]
    return {
        "observedGeneration": generation,
        "conditions": merged(recorded, generation, updates, now),
    }


COUNTS = ("replicas", "readyReplicas", "instancesByVersion")
"""Top-level status fields that only count instances."""
UPGRADE_COUNTS = ("progress", "rollbackInfo")
"""Fields of `rollingUpgrade` that only count instances."""


def only_counts_moved(recorded: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Whether `status` differs from `recorded` in counts alone: the counters, the
    upgrade's progress and rollback counts, and the conditions' messages (which carry
    the numbers), while every decision (the rollout's phase, batch and members, each
    condition's status and reason, the versions) is as recorded. Such a write may wait
    a moment; one that records a decision may not.

    >>> ready = {"type": "Ready", "status": "False", "reason": "Upgrading", "message": "1 of 4"}
    >>> old = {"replicas": 4, "readyReplicas": 1, "conditions": [ready],
    ...        "rollingUpgrade": {"phase": "Replacing", "progress": {"a": 1}}}
    >>> new = {"replicas": 4, "readyReplicas": 2, "conditions": [{**ready, "message": "2 of 4"}],
    ...        "rollingUpgrade": {"phase": "Replacing", "progress": {"a": 2}}}
    >>> only_counts_moved(old, new), only_counts_moved(old, old)
    (True, False)
    >>> only_counts_moved(old, {**new, "rollingUpgrade": {"phase": "Done", "progress": {}}})
    False
    >>> only_counts_moved(old, {**new, "conditions": [{**ready, "status": "True"}]})
    False
    """
    written, wanted = as_stored(recorded, status), as_stored(status, status)
    return written != wanted and _decisions(written) == _decisions(wanted)


def as_stored(status: Mapping[str, Any], keys: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `status` named in `keys`, as the API server stores them after a
    merge patch (`galleon.core.merge_patch.stored`: a null key is absent).

    >>> as_stored({"a": {"b": None, "c": 1}, "d": [{"e": None}], "f": None}, {"a": 0, "d": 0})
    {'a': {'c': 1}, 'd': [{}]}
    """
    return {k: merge_patch.stored(status[k]) for k in keys if status.get(k) is not None}


@dataclass(frozen=True)
class WriteDecision:
    """Whether a pass sends its status now, and what it keeps for the next pass."""

    send: bool
    held_since: float | None
    """When the write held back was first held (None: none is held back)."""
    due_in: float
    """Seconds until the write held back is due (infinite: none is)."""


def write_decision(
    recorded: Mapping[str, Any],
    status: Mapping[str, Any],
    held_since: float | None,
    now: float,
    window: float,
) -> WriteDecision:
    """Send the status now, skip it (nothing changed), or hold it back (only counts
    moved, and the first pass that held it back was less than `window` seconds ago).
    `now` and `held_since` are monotonic seconds.

    >>> ready = {"type": "Ready", "status": "False", "reason": "Upgrading", "message": "1"}
    >>> old = {"readyReplicas": 1, "conditions": [ready]}
    >>> new = {"readyReplicas": 2, "conditions": [{**ready, "message": "2"}]}
    >>> write_decision(old, new, None, 10.0, 2.0)
    WriteDecision(send=False, held_since=10.0, due_in=2.0)
    >>> write_decision(old, new, 10.0, 12.5, 2.0)
    WriteDecision(send=True, held_since=None, due_in=inf)
    >>> write_decision(old, {**new, "conditions": [{**ready, "status": "True"}]}, None, 10.0, 2.0)
    WriteDecision(send=True, held_since=None, due_in=inf)
    >>> write_decision(old, old, 10.0, 11.0, 2.0).send
    False
    """
    never = float("inf")
    written, wanted = as_stored(recorded, status), as_stored(status, status)
    if written == wanted:
        return WriteDecision(False, None, never)
    if _decisions(written) == _decisions(wanted):  # only counts moved
        since = now if held_since is None else held_since
        if since + window > now:
            return WriteDecision(False, since, since + window - now)
    return WriteDecision(True, None, never)


def _decisions(status: Mapping[str, Any]) -> dict[str, Any]:
    """The status without what only counts."""
    kept = {k: v for k, v in status.items() if k not in COUNTS}
    upgrade = kept.get("rollingUpgrade")
    if isinstance(upgrade, Mapping):
        kept["rollingUpgrade"] = {k: v for k, v in upgrade.items() if k not in UPGRADE_COUNTS}
    conditions = kept.get("conditions")
    if isinstance(conditions, list):
        kept["conditions"] = [
            {k: v for k, v in c.items() if k != "message"} if isinstance(c, Mapping) else c
            for c in conditions
        ]
    return kept


def counters(facts: ScaleSetFacts) -> dict[str, Any]:
    """Replicas, readiness and instances per version."""
    live = facts.live
    by_version: dict[str, list[int]] = {}
    for i in live:
        counts = by_version.setdefault(inst.version_of(i.revision or "unknown"), [0, 0])
        counts[0] += 1
        counts[1] += facts.health(i) == "Healthy"
    current = facts.intent.current
    return {
        "replicas": len(live),
        "readyReplicas": facts.healthy,
        "selector": inst.selector(facts.name),
        "currentVersion": inst.version_of(current) if current else None,
        "targetVersion": facts.resolution.target,
        "waitingForReplication": facts.resolution.waiting_for_replication,
        "instancesByVersion": [
            {"version": v, "instances": c[0], "healthy": c[1]}
            for v, c in sorted(by_version.items(), key=lambda kv: revision_sort_key(kv[0]))
        ],
    }


def upgrade_status(facts: ScaleSetFacts, rollout: ro.Rollout) -> dict[str, Any]:
    """`status.rollingUpgrade`: the cloud's rolling-upgrade status plus the planner's
    record (phase, batch members, upgraded/failed/rolled-back instances)."""
    spec, start = facts.spec, facts.start
    failed = set(rollout.failed)
    successful = [i for i in rollout.upgraded if i not in failed]
    in_progress = [] if rollout.phase == "Done" else list(rollout.members)
    pending = (
        max(0, spec.capacity - len(set(rollout.upgraded) | set(in_progress)))
        if rollout.code == "RollingForward"
        else 0
    )
    return {
        "fromVersion": inst.version_of(rollout.from_revision) if rollout.from_revision else None,
        "toVersion": inst.version_of(rollout.to_revision),
        "fromRevision": rollout.from_revision,
        "toRevision": rollout.to_revision,
        "startedBy": start.started_by,
        "runningStatus": {
            "code": rollout.code,
            "startTime": times.format(rollout.started),
            "lastAction": start.last_action,
            "lastActionTime": start.last_action_time or times.format(rollout.started),
        },
        "progress": {
            "successfulInstanceCount": len(successful),
            "failedInstanceCount": len(failed),
            "inProgressInstanceCount": len(in_progress),
            "pendingInstanceCount": pending,
        },
        "currentBatch": rollout.batch,
        "totalBatches": ro.planned_batches(rollout, spec.capacity, facts.policy),
        "error": (
            {"code": rollout.error_code, "message": rollout.error_message}
            if rollout.error_code
            else None
        ),
        "rollbackInfo": rollback_info(facts, rollout),
        "phase": rollout.phase,
        "phaseSince": times.format(rollout.phase_since or rollout.started),
        "batchStartTime": times.format(rollout.batch_since) if rollout.batch_since else None,
        "batchInstances": list(rollout.members),
        "upgradedInstances": list(rollout.upgraded),
        "failedInstances": list(rollout.failed),
        "rolledBackInstances": list(rollout.rolled_back),
        "cancelRequested": rollout.cancel_requested,
    }


def rollback_info(facts: ScaleSetFacts, rollout: ro.Rollout) -> dict[str, int] | None:
    """How the rolled-back instances fare on the previous revision (None: no rollback)."""
    if not rollout.rolled_back:
        return None
    seen = {i.index: i for i in facts.instances}
    states = [
        facts.health(x)
        if (x := seen.get(i)) is not None and x.revision == rollout.from_revision
        else "Initializing"
        for i in rollout.rolled_back
    ]
    return {
        "successfullyRolledbackInstanceCount": states.count("Healthy"),
        "failedRolledbackInstanceCount": states.count("Unhealthy"),
    }


def history(
    recorded: Mapping[str, Any], upgrade: Mapping[str, Any], rollout: ro.Rollout, now: datetime
) -> list[dict[str, Any]]:
    """`status.upgradeHistory`, newest first: an ended upgrade is entered once (keyed
    by start time and target), at most MAX_UPGRADE_HISTORY kept."""
    entries = [dict(h) for h in recorded.get("upgradeHistory") or []]
    if rollout.phase != "Done":
        return entries
    start = upgrade["runningStatus"]["startTime"]
    entry = {
        "fromVersion": upgrade["fromVersion"],
        "toVersion": upgrade["toVersion"],
        "startedBy": upgrade["startedBy"],
        "startTime": start,
        "endTime": times.format(rollout.phase_since or now),
        "result": rollout.code,
        "progress": upgrade["progress"],
        "error": upgrade["error"],
        "rollbackInfo": upgrade["rollbackInfo"],
    }
    rest = [
        h
        for h in entries
        if (h.get("startTime"), h.get("toVersion")) != (start, upgrade["toVersion"])
    ]
    return [entry, *rest][:MAX_UPGRADE_HISTORY]


def set_upgrading(facts: ScaleSetFacts) -> Update:
    """Upgrading: True while an upgrade runs (forward or back); otherwise False with
    why none runs (up to date, waiting for the user, an ended upgrade's result)."""
    rollout = facts.rollout
    if facts.active:
        assert rollout is not None
        if rollout.phase == "RollingBack":
            return (
                reasons.UPGRADING,
                "True",
                reasons.ROLLING_BACK,
                f"the upgrade to {inst.version_of(rollout.to_revision)} faulted; rolling "
                f"instances {', '.join(map(str, rollout.members))} back to "
                f"{inst.version_of(rollout.from_revision or '')}",
            )
        message = (
            f"upgrading {inst.version_of(rollout.from_revision or '') or '-'} to "
            f"{inst.version_of(rollout.to_revision)}: batch {rollout.batch}, "
            f"{len(rollout.upgraded)} of {facts.spec.capacity} upgraded"
        )
        deferred = ro.awaiting_approval(facts.instances, rollout, facts.now)
        if deferred:
            message += "; " + ", ".join(
                f"instance {index} waits for approval until {times.format(deadline)}"
                for index, deadline in sorted(deferred.items())
            )
        if facts.spec.paused:
            message += " (paused)"
        elif facts.intent.holds:
            message += f"; the next batch waits: {held(facts.intent.holds)}"
        return (reasons.UPGRADING, "True", reasons.ROLLING_FORWARD, message)
    trigger = facts.intent.trigger
    if (
        rollout is not None
        and rollout.code != "Completed"
        and (facts.faulted or rollout.code == "Cancelled")
    ):
        return (
            reasons.UPGRADING,
            "False",
            reasons.upgrade_ended(rollout.code),
            f"the upgrade to {inst.version_of(rollout.to_revision)} {rollout.code.lower()}"
            + (f": {rollout.error_message}" if rollout.error_message else "")
            + f"; annotate {inst.START_ANNOTATION} to try again",
        )
    holds = facts.intent.holds
    if holds and (trigger.may_start or facts.intent.start_requested) and facts.target:
        # An upgrade would start now but for the holds: say what it waits for.
        return (
            reasons.UPGRADING,
            "False",
            holds[0].reason,
            f"the upgrade to {inst.version_of(facts.target)} waits: {held(holds)}",
        )
    if trigger.message:
        return (reasons.UPGRADING, "False", trigger.reason, trigger.message)
    if facts.resolution.reason == reasons.WAITING_FOR_WAVE:
        # A newer version is held by the definition's release waves: say what it waits for.
        return (
            reasons.UPGRADING,
            "False",
            reasons.WAITING_FOR_WAVE,
            f"no upgrade running; {facts.resolution.message}",
        )
    return (reasons.UPGRADING, "False", reasons.UP_TO_DATE, "no upgrade running")


def held(holds: Sequence[ro.Hold]) -> str:
    """What holds the next batch back, in the holds' own words.

    >>> held([ro.Hold("OutsideMaintenanceWindow", "next window opens at 02:00")])
    'next window opens at 02:00'
    """
    return "; ".join(h.message for h in holds)


def blocker(facts: ScaleSetFacts) -> tuple[str, str, bool] | None:
    """(reason, message, stalled) of what keeps instances from being created, if
    anything: what the apiserver refused, a disk conflict, no usable version."""
    if facts.problems:
        reason = facts.problems[0][0]
        message = "; ".join(m for _, m in facts.problems)
        return reason, message, True
    if facts.target is None and not facts.active:
        # Nothing usable in the region: say why (instances, if any, stay as they are).
        reason, message = facts.resolution.reason, facts.resolution.message
        if facts.resolution.target is not None:
            reason = reasons.NO_COPY_IN_REGION
            message = (
                f"version {facts.resolution.target} has no completed copy in {facts.spec.region}"
            )
        return reason, message, reason == reasons.VERSION_NOT_FOUND
    return None


def said_refused_controls(facts: ScaleSetFacts, upgrading: Update) -> Update:
    """The Upgrading condition, with why a start or cancel annotation was ignored
    (a time without a zone, say) appended: an ignored control is never silent."""
    refused = facts.intent.refused_controls
    if not refused:
        return upgrading
    type_, state, reason, message = upgrading
    return (type_, state, reason, "; ".join([m for m in (message, *refused) if m]))


def set_ready(facts: ScaleSetFacts, upgrading: Update) -> list[Update]:
    """Ready / Reconciling / Stalled. Ready when no upgrade runs and every instance is
    healthy; Stalled on a fault (until the spec moves on), a version that does not
    exist or what the apiserver refused; a paused upgrade is neither Ready nor
    Reconciling."""
    capacity, spec = facts.spec.capacity, facts.spec
    _, _, upgrading_reason, upgrading_message = upgrading
    blocked = blocker(facts)
    if blocked is not None:
        reason, message, stalled = blocked
        return kstatus(False, reason, message, progressing=not stalled, stalled=stalled)
    window = facts.intent.window
    if window is not None and window.error:
        return kstatus(False, window.reason, window.message, stalled=True)
    if facts.active:
        if spec.paused and upgrading_reason == reasons.ROLLING_FORWARD:
            return kstatus(False, reasons.PAUSED, upgrading_message, progressing=False)
        holds = facts.intent.holds
        if holds and facts.rollout is not None and facts.rollout.phase == "Pausing":
            # Between batches and held (a closed maintenance window): nothing progresses
            # until the hold lifts, as when paused.
            return kstatus(False, holds[0].reason, upgrading_message, progressing=False)
        return kstatus(False, upgrading_reason, upgrading_message, progressing=True)
    if facts.faulted:
        return kstatus(False, reasons.UPGRADE_FAULTED, upgrading_message, stalled=True)
    if facts.missing_images:
        message = f"no copy of {', '.join(facts.missing_images)} in {spec.region}"
        return kstatus(False, reasons.NO_COPY_IN_REGION, message, progressing=True)
    healthy = facts.healthy
    if healthy >= capacity:
        return kstatus(
            True, reasons.INSTANCES_HEALTHY, f"{healthy} of {capacity} instances healthy"
        )
    return kstatus(
        False,
        reasons.INSTANCES_NOT_HEALTHY,
        f"{healthy} of {capacity} instances healthy",
        progressing=True,
    )


def set_degraded(facts: ScaleSetFacts) -> Update:
    """Degraded: True on a fault that still matters, or while instances outside the
    running batch are unhealthy or missing."""
    if facts.faulted:
        assert facts.rollout is not None
        return (
            reasons.DEGRADED,
            "True",
            facts.rollout.error_code or reasons.FAULTED,
            facts.rollout.error_message,
        )
    unhealthy = facts.unhealthy
    blocked = blocker(facts)
    if blocked is not None and (unhealthy or facts.problems):
        reason, message, _ = blocked
        missing = facts.spec.capacity - len(facts.live)
        return (
            reasons.DEGRADED,
            "True",
            reason,
            f"{missing} of {facts.spec.capacity} instances missing: {message}"
            if missing
            else message,
        )
    if unhealthy:
        return (
            reasons.DEGRADED,
            "True",
            reasons.INSTANCES_UNHEALTHY,
            f"{unhealthy} of {facts.spec.capacity} instances unhealthy or missing",
        )
    return (reasons.DEGRADED, "False", reasons.INSTANCES_HEALTHY, "")


def set_maintenance_window(facts: ScaleSetFacts) -> Update:
    """MaintenanceWindow: True while the windows let a batch start now (or there are
    none), False outside them, inside a deny window or when they cannot be read;
    the message says until when, or when the next window opens."""
    window = facts.intent.window
    if window is None:
        return (
            reasons.MAINTENANCE_WINDOW,
            "Unknown",
            reasons.PENDING,
            "maintenance windows not evaluated yet",
        )
    return (
        reasons.MAINTENANCE_WINDOW,
        "True" if window.allowed else "False",
        window.reason,
        window.message,
    )


def instance_counts(
    instances: Sequence[ro.Instance], policy: ro.Policy, now: datetime
) -> dict[tuple[str, str], int]:
    """Live instances by (version, health), for the instances gauge.

    >>> from datetime import datetime, timezone
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> instance_counts([ro.Instance(0, "1.0.0-a", ready=True)], ro.Policy(), t)
    {('1.0.0', 'Healthy'): 1}
    """
    counts: dict[tuple[str, str], int] = {}
    for i in instances:
        if not i.exists or i.deleting:
            continue
        key = (inst.version_of(i.revision or "unknown"), ro.health(i, policy, now))
        counts[key] = counts.get(key, 0) + 1
    return counts
