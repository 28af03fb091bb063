"""The batched rolling OS image upgrade of a ScaleSet, as a pure state machine.

`plan(fleet, rollout, policy, now)` looks at the instances as they are and at the
rollout state persisted in the ScaleSet's status, and returns what to do now
(create or delete instances), the new rollout state, the Events to post and when
to look again. It does no I/O: the controller reads, calls it, and applies.

Rules of this module (cloud semantics, docs/rollout.md):
- A batch is `max(1, capacity * maxBatchInstancePercent // 100)` instances.
- Before each batch: if more than `maxUnhealthyInstancePercent` of capacity is
  unhealthy (for any reason, any version), the upgrade stops as Faulted with
  MaxUnhealthyInstancePercentExceededBeforeRollingUpgrade.
- A batch replaces its members (delete, then create the same index at the target
  version, with the same data disks; with maxSurge the new instance is created
  first under a surge index and the old one deleted once the new one is healthy
  — not modelled yet: surge is refused as unsupported by the planner's caller).
- After a batch: wait until each member is Healthy, or Unhealthy because
  `upgradedInstanceHealthTimeout` passed. A member that disappears meanwhile
  (deleted by someone else) is re-created, not counted as unhealthy. If more than
  `maxUnhealthyUpgradedInstancePercent` of all instances upgraded so far are
  unhealthy, the upgrade is Faulted
  (MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade) and, when
  rollback is on, the unhealthy upgraded instances go back to the previous
  version. Otherwise wait `pauseTimeBetweenBatches`, then the next batch.
- Every decision depends only on the observed fleet and the persisted state, so a
  restarted operator continues exactly where the last one stood: members of the
  running batch are finished, never a second batch started early, and an
  instance recorded as upgraded is never upgraded again in the same rollout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

Health = Literal["Healthy", "Initializing", "Unhealthy"]
Phase = Literal["Replacing", "Waiting", "Pausing", "RollingBack", "Done"]
Code = Literal["RollingForward", "Completed", "Faulted", "Cancelled"]

BEFORE = "MaxUnhealthyInstancePercentExceededBeforeRollingUpgrade"
UPGRADED = "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade"


@dataclass(frozen=True)
class Instance:
    """One instance (pod `<scaleset>-<index>`) as observed."""

    index: int
    version: str | None = None
    exists: bool = True
    ready: bool = False
    ready_since: datetime | None = None
    created: datetime | None = None
    deleting: bool = False
    failed: bool = False


@dataclass(frozen=True)
class Policy:
    max_batch_percent: int = 20
    max_unhealthy_percent: int = 20
    max_unhealthy_upgraded_percent: int = 20
    pause: timedelta = timedelta(0)
    prioritize_unhealthy: bool = False
    rollback: bool = True
    health_timeout: timedelta = timedelta(minutes=5)
    min_ready: timedelta = timedelta(0)


@dataclass(frozen=True)
class Rollout:
    """The rollout state persisted in `status.rollingUpgrade` (empty tuples, not None)."""

    from_version: str | None
    to_version: str
    started: datetime
    code: Code = "RollingForward"
    phase: Phase = "Replacing"
    batch: int = 0
    members: tuple[int, ...] = ()
    phase_since: datetime | None = None
    upgraded: tuple[int, ...] = ()
    failed: tuple[int, ...] = ()
    rolled_back: tuple[int, ...] = ()
    error_code: str = ""
    error_message: str = ""
    cancel_requested: bool = False

    @property
    def active(self) -> bool:
        return self.code == "RollingForward" or self.phase == "RollingBack"


@dataclass(frozen=True)
class Create:
    index: int
    version: str


@dataclass(frozen=True)
class Delete:
    index: int
    reason: str


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    actions: tuple[Create | Delete, ...] = ()
    rollout: Rollout | None = None
    events: tuple[Event, ...] = ()
    requeue_after: float = 30.0


@dataclass(frozen=True)
class Fleet:
    """What the planner needs to know of one ScaleSet besides its rollout."""

    capacity: int
    instances: Sequence[Instance] = field(default_factory=tuple)
    current_version: str | None = None
    target_version: str | None = None
    may_start: bool = True
    paused: bool = False
    cancel: bool = False
    start_requested: bool = False
    """A user asked for this upgrade: start it even if an earlier attempt at the
    same target faulted or was cancelled."""


def batch_size(capacity: int, percent: int) -> int:
    """Instances per batch: a share of capacity, at least one.

    >>> batch_size(10, 20), batch_size(2, 20), batch_size(0, 20)
    (2, 1, 0)
    """
    return 0 if capacity == 0 else max(1, capacity * percent // 100)


def total_batches(instances: int, size: int) -> int:
    return 0 if size == 0 else -(-instances // size)


def planned_batches(rollout: Rollout, capacity: int, policy: Policy) -> int:
    """Batches of the upgrade in all: those started, and those its instances not yet
    upgraded (nor in the running batch) still need. It stays put when the upgrade ends
    early, so "batch 2 of 5" still reads so after a fault."""
    left = [i for i in range(capacity) if i not in rollout.upgraded and i not in rollout.members]
    return rollout.batch + total_batches(len(left), batch_size(capacity, policy.max_batch_percent))


def health(instance: Instance, policy: Policy, now: datetime) -> Health:
    """Healthy when Ready for minReady; Unhealthy when failed, missing or past the timeout.

    >>> from datetime import datetime, timezone
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> health(Instance(0, "1.0.0", ready=True, ready_since=t), Policy(), t)
    'Healthy'
    >>> health(Instance(0, "1.0.0", created=t), Policy(), t + timedelta(minutes=6))
    'Unhealthy'
    """
    if not instance.exists or instance.failed or instance.deleting:
        return "Unhealthy"
    if instance.ready and (
        instance.ready_since is None or now - instance.ready_since >= policy.min_ready
    ):
        return "Healthy"
    if instance.created is not None and now - instance.created >= policy.health_timeout:
        return "Unhealthy"
    return "Initializing"


def _by_index(instances: Sequence[Instance]) -> dict[int, Instance]:
    return {i.index: i for i in instances}


def steady(fleet: Fleet, rollout: Rollout | None) -> list[Create | Delete]:
    """Keep `capacity` instances: create the missing (at the version they should run),
    delete those beyond capacity (highest indexes)."""
    actions: list[Create | Delete] = []
    seen = _by_index(fleet.instances)
    for index in range(fleet.capacity):
        instance = seen.get(index)
        if instance is None or not instance.exists:
            version = _version_for(index, fleet, rollout)
            if version is not None:
                actions.append(Create(index, version))
    for instance in sorted(fleet.instances, key=lambda i: -i.index):
        if instance.index >= fleet.capacity and instance.exists and not instance.deleting:
            actions.append(Delete(instance.index, "ScaleIn"))
    return actions


def _version_for(index: int, fleet: Fleet, rollout: Rollout | None) -> str | None:
    """Which version a missing instance comes back at."""
    if rollout is None or not rollout.active:
        if rollout is not None and rollout.code == "Completed":
            return rollout.to_version
        return fleet.current_version or fleet.target_version
    if index in rollout.rolled_back:
        return rollout.from_version
    if index in rollout.upgraded or index in rollout.members:
        return rollout.to_version
    return rollout.from_version or rollout.to_version


def plan(fleet: Fleet, rollout: Rollout | None, policy: Policy, now: datetime) -> Plan:
    """One decision for a ScaleSet (see the module rules)."""
    if rollout is not None and rollout.active:
        return _advance(fleet, rollout, policy, now)
    actions = steady(fleet, rollout)
    target, current = fleet.target_version, fleet.current_version
    if (
        target is not None
        and current is not None
        and target != current
        and (fleet.may_start or fleet.start_requested)
        and not fleet.paused
        and (fleet.start_requested or not _stopped_on(rollout, target))
        and not actions
    ):
        started = Rollout(current, target, now, phase="Pausing", phase_since=now)
        event = Event("Normal", "RollingUpgradeStarted", f"upgrading from {current} to {target}")
        first = _advance(fleet, started, policy, now)
        return replace(first, events=(event, *first.events))
    return Plan(tuple(actions), rollout, (), 30.0)


def _stopped_on(rollout: Rollout | None, target: str) -> bool:
    """A faulted (or cancelled) upgrade to `target` is not retried by itself."""
    return rollout is not None and rollout.to_version == target and rollout.code != "Completed"


def _advance(fleet: Fleet, rollout: Rollout, policy: Policy, now: datetime) -> Plan:
    if rollout.phase == "Replacing":
        return _replacing(fleet, rollout, policy, now)
    if rollout.phase == "Waiting":
        return _waiting(fleet, rollout, policy, now)
    if rollout.phase == "RollingBack":
        return _rolling_back(fleet, rollout, policy, now)
    return _between_batches(fleet, rollout, policy, now)


def _replace(
    fleet: Fleet, rollout: Rollout, indexes: Sequence[int], version: str
) -> list[Create | Delete]:
    """Delete members still on another version; create the missing at `version`."""
    actions: list[Create | Delete] = []
    seen = _by_index(fleet.instances)
    for index in indexes:
        instance = seen.get(index)
        if instance is None or not instance.exists:
            actions.append(Create(index, version))
        elif instance.version != version and not instance.deleting:
            actions.append(Delete(index, f"Upgrade to {version}"))
    return actions


def _settled(fleet: Fleet, indexes: Sequence[int], version: str) -> bool:
    """Every instance in `indexes` exists on `version` and is not being deleted."""
    seen = _by_index(fleet.instances)
    return all(
        (i := seen.get(index)) is not None and i.exists and not i.deleting and i.version == version
        for index in indexes
    )


def _replacing(fleet: Fleet, rollout: Rollout, policy: Policy, now: datetime) -> Plan:
    others = [a for a in steady(fleet, rollout) if a.index not in rollout.members]
    actions = _replace(fleet, rollout, rollout.members, rollout.to_version)
    if actions or not _settled(fleet, rollout.members, rollout.to_version):
        return Plan(tuple(others + actions), rollout, (), 1.0)
    waiting = replace(rollout, phase="Waiting", phase_since=now)
    return replace(_waiting(fleet, waiting, policy, now), actions=tuple(others))


def _waiting(fleet: Fleet, rollout: Rollout, policy: Policy, now: datetime) -> Plan:
    seen = _by_index(fleet.instances)
    if not _settled(fleet, rollout.members, rollout.to_version):
        # A member vanished or is going away (deleted by someone else, evicted): that
        # says nothing about the version. Put it back, then wait again.
        return _replacing(fleet, replace(rollout, phase="Replacing"), policy, now)
    states = {
        index: health(seen.get(index, Instance(index, exists=False)), policy, now)
        for index in rollout.members
    }
    pending = [i for i, h in states.items() if h == "Initializing"]
    others = tuple(a for a in steady(fleet, rollout) if a.index not in rollout.members)
    if pending:
        return Plan(others, rollout, (), _next_health_change(seen, pending, policy, now))
    healthy = tuple(sorted(i for i, h in states.items() if h == "Healthy"))
    unhealthy = tuple(sorted(i for i, h in states.items() if h == "Unhealthy"))
    upgraded = tuple(sorted({*rollout.upgraded, *healthy, *unhealthy}))
    failed = tuple(sorted({*rollout.failed, *unhealthy}))
    done = replace(rollout, upgraded=upgraded, failed=failed, members=())
    batch_event = Event(
        "Normal" if not unhealthy else "Warning",
        "BatchCompleted",
        f"batch {rollout.batch}: {len(healthy)} healthy, {len(unhealthy)} unhealthy on "
        f"{rollout.to_version}",
    )
    limit = policy.max_unhealthy_upgraded_percent
    if len(failed) * 100 > limit * len(upgraded):
        message = (
            f"{len(failed)} of {len(upgraded)} upgraded instances are unhealthy "
            f"(more than {limit}%)"
        )
        faulted = replace(
            done, code="Faulted", error_code=UPGRADED, error_message=message, phase_since=now
        )
        events = (batch_event, Event("Warning", "RollingUpgradeFaulted", message))
        if policy.rollback and failed:
            back = replace(faulted, phase="RollingBack", members=failed)
            plan_ = _rolling_back(fleet, back, policy, now)
            return replace(plan_, events=events + plan_.events)
        return Plan(others, replace(faulted, phase="Done"), events, 30.0)
    remaining = [
        i
        for i in range(fleet.capacity)
        if i not in upgraded and not _runs(seen.get(i), done.to_version)
    ]
    if not remaining:
        completed = replace(done, code="Completed", phase="Done", phase_since=now)
        message = f"all {fleet.capacity} instances run {rollout.to_version}"
        return Plan(
            others,
            completed,
            (batch_event, Event("Normal", "RollingUpgradeCompleted", message)),
            30.0,
        )
    pausing = replace(done, phase="Pausing", phase_since=now)
    if policy.pause <= timedelta(0):
        # No pause between batches: the next batch starts in this same decision.
        following = _between_batches(fleet, pausing, policy, now)
        return replace(following, events=(batch_event, *following.events))
    return Plan(others, pausing, (batch_event,), max(1.0, policy.pause.total_seconds()))


def _between_batches(fleet: Fleet, rollout: Rollout, policy: Policy, now: datetime) -> Plan:
    others = tuple(steady(fleet, rollout))
    since = rollout.phase_since or now
    if rollout.batch > 0 and now - since < policy.pause:
        return Plan(others, rollout, (), (policy.pause - (now - since)).total_seconds())
    if fleet.cancel or rollout.cancel_requested:
        cancelled = replace(rollout, code="Cancelled", phase="Done", phase_since=now)
        return Plan(
            others,
            cancelled,
            (Event("Normal", "RollingUpgradeCancelled", f"cancelled after batch {rollout.batch}"),),
            30.0,
        )
    if fleet.paused:
        return Plan(others, rollout, (), 30.0)
    seen = _by_index(fleet.instances)
    unhealthy = [
        i
        for i in range(fleet.capacity)
        if health(seen.get(i, Instance(i, exists=False)), policy, now) == "Unhealthy"
    ]
    if len(unhealthy) * 100 > policy.max_unhealthy_percent * fleet.capacity:
        message = (
            f"{len(unhealthy)} of {fleet.capacity} instances are unhealthy before batch "
            f"{rollout.batch + 1} (more than {policy.max_unhealthy_percent}%)"
        )
        stopped = replace(
            rollout,
            code="Faulted",
            phase="Done",
            error_code=BEFORE,
            error_message=message,
            phase_since=now,
        )
        return Plan(others, stopped, (Event("Warning", "RollingUpgradeFaulted", message),), 30.0)
    candidates = [
        i
        for i in range(fleet.capacity)
        if i not in rollout.upgraded and not _runs(seen.get(i), rollout.to_version)
    ]
    if not candidates:
        completed = replace(rollout, code="Completed", phase="Done", phase_since=now)
        message = f"all {fleet.capacity} instances run {rollout.to_version}"
        return Plan(others, completed, (Event("Normal", "RollingUpgradeCompleted", message),), 30.0)
    if policy.prioritize_unhealthy:
        candidates.sort(key=lambda i: (i not in unhealthy, i))
    size = batch_size(fleet.capacity, policy.max_batch_percent)
    members = tuple(sorted(candidates[:size]))
    started = replace(
        rollout, phase="Replacing", batch=rollout.batch + 1, members=members, phase_since=now
    )
    event = Event(
        "Normal",
        "BatchStarted",
        f"batch {started.batch} of "
        f"{rollout.batch + total_batches(len(candidates), size)}: instances "
        f"{', '.join(map(str, members))} to {rollout.to_version}",
    )
    replaced = _replacing(fleet, started, policy, now)
    return replace(replaced, events=(event, *replaced.events))


def _next_health_change(
    seen: dict[int, Instance], pending: Sequence[int], policy: Policy, now: datetime
) -> float:
    """Seconds until a pending member's health can change without any event: its
    minimum ready time passes, or its health timeout (1 to 30 s; pod events wake
    the controller earlier when readiness flips)."""
    moments = []
    for index in pending:
        instance = seen[index]
        if instance.ready and instance.ready_since is not None:
            moments.append(instance.ready_since + policy.min_ready)
        elif instance.created is not None:
            moments.append(instance.created + policy.health_timeout)
    if not moments:
        return 2.0
    return min(30.0, max(1.0, (min(moments) - now).total_seconds()))


def _runs(instance: Instance | None, version: str) -> bool:
    """Already on `version` and healthy enough to be left alone (not deleting, not failed)."""
    return (
        instance is not None
        and instance.exists
        and not instance.deleting
        and not instance.failed
        and instance.version == version
    )


def _rolling_back(fleet: Fleet, rollout: Rollout, policy: Policy, now: datetime) -> Plan:
    version = rollout.from_version
    others = tuple(a for a in steady(fleet, rollout) if a.index not in rollout.members)
    if version is None:
        return Plan(others, replace(rollout, phase="Done"), (), 30.0)
    actions = _replace(fleet, rollout, rollout.members, version)
    rolled = replace(rollout, rolled_back=tuple(sorted({*rollout.rolled_back, *rollout.members})))
    if actions or not _settled(fleet, rollout.members, version):
        return Plan(others + tuple(actions), rolled, (), 1.0)
    seen = _by_index(fleet.instances)
    states = {index: health(seen[index], policy, now) for index in rollout.members}
    pending = [i for i, h in states.items() if h == "Initializing"]
    if pending:  # the rollback ends when its instances are healthy again (or not)
        return Plan(others, rolled, (), _next_health_change(seen, pending, policy, now))
    bad = [i for i, h in states.items() if h == "Unhealthy"]
    message = f"instances {', '.join(map(str, rollout.members))} are back on {version}" + (
        f"; {', '.join(map(str, bad))} unhealthy there too" if bad else ", healthy"
    )
    done = replace(rolled, phase="Done", members=())
    return Plan(others, done, (Event("Warning" if bad else "Normal", "RolledBack", message),), 30.0)
