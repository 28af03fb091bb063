"""The batched rolling OS image upgrade of a ScaleSet, as a pure state machine.

`plan(observed, rollout, policy, now)` looks at the instances as they are and at the
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
- Every decision depends only on the observation and the persisted state, so a
  restarted operator continues exactly where the last one stood: members of the
  running batch are finished, never a second batch started early, and an
  instance recorded as upgraded is never upgraded again in the same rollout.
- Every plan says why, in `Plan.notes`: one human-readable line for each check
  that decided (with its numbers: "before batch 3: 3 of 10 unhealthy, at most 2
  allowed (20%): Faulted"), for each wait (with the time left) and for each group
  of actions, in the order the planner made them. Every path sets at least one
  note. Notes explain; nothing decides on them (the controller may log them, tests
  replay them as golden logs).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

Health = Literal["Healthy", "Initializing", "Unhealthy"]
Phase = Literal["Replacing", "Waiting", "Pausing", "RollingBack", "Done"]
Code = Literal["RollingForward", "Completed", "Faulted", "Cancelled"]

BEFORE = "MaxUnhealthyInstancePercentExceededBeforeRollingUpgrade"
UPGRADED = "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade"
_UPGRADE_TO = "Upgrade to "  # the reason of a Delete for an upgrade or a rollback


@dataclass(frozen=True)
class Instance:
    """One instance (pod `<scaleset>-<index>`) as observed."""

    index: int
    revision: str | None = None
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

    from_revision: str | None
    to_revision: str
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
    revision: str


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
    """One decision: what to do now, the rollout state to persist, the Events to post,
    when to look again (seconds), and why (`notes`, in the order the planner decided)."""

    actions: tuple[Create | Delete, ...] = ()
    rollout: Rollout | None = None
    events: tuple[Event, ...] = ()
    requeue_after: float = 30.0
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Observation:
    """What the planner needs to know of one ScaleSet besides its rollout."""

    capacity: int
    instances: Sequence[Instance] = field(default_factory=tuple)
    current_revision: str | None = None
    target_revision: str | None = None
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


def steady(observed: Observation, rollout: Rollout | None) -> list[Create | Delete]:
    """Keep `capacity` instances: create the missing (at the version they should run),
    delete those beyond capacity (highest indexes)."""
    actions: list[Create | Delete] = []
    seen = _by_index(observed.instances)
    for index in range(observed.capacity):
        instance = seen.get(index)
        if instance is None or not instance.exists:
            version = _version_for(index, observed, rollout)
            if version is not None:
                actions.append(Create(index, version))
    for instance in sorted(observed.instances, key=lambda i: -i.index):
        if instance.index >= observed.capacity and instance.exists and not instance.deleting:
            actions.append(Delete(instance.index, "ScaleIn"))
    return actions


def _version_for(index: int, observed: Observation, rollout: Rollout | None) -> str | None:
    """Which version a missing instance comes back at."""
    if rollout is None or not rollout.active:
        if rollout is not None and rollout.code == "Completed":
            return rollout.to_revision
        return observed.current_revision or observed.target_revision
    if index in rollout.rolled_back:
        return rollout.from_revision
    if index in rollout.upgraded or index in rollout.members:
        return rollout.to_revision
    return rollout.from_revision or rollout.to_revision


def plan(observed: Observation, rollout: Rollout | None, policy: Policy, now: datetime) -> Plan:
    """One decision for a ScaleSet (see the module rules), with the notes that explain it.

    Ten instances on 1.0.0, target 1.0.2, default policy: the upgrade starts and its
    first batch of two goes.

    >>> from datetime import datetime, timezone
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> fleet = [Instance(i, "1.0.0", ready=True, created=t) for i in range(10)]
    >>> first = plan(Observation(10, fleet, "1.0.0", "1.0.2"), None, Policy(), t)
    >>> [(type(a).__name__, a.index) for a in first.actions]
    [('Delete', 0), ('Delete', 1)]
    >>> print("\\n".join(first.notes))
    upgrade 1.0.0 -> 1.0.2: starting (a new target revision)
    before batch 1: 0 of 10 unhealthy, at most 2 allowed (20%)
    batch 1 of 5: replacing instances 0, 1 (2 per batch: 20% of 10)
    batch 1 of 5: 0 of 2 on 1.0.2
    deleting instances 0, 1: they come back on 1.0.2 with the same data disks

    Nothing to do says so too:

    >>> plan(Observation(10, fleet, "1.0.0", "1.0.0"), None, Policy(), t).notes
    ('no upgrade: fleet at target 1.0.0, 10 of 10 present',)
    """
    decided = _decide(observed, rollout, policy, now)
    return replace(decided, notes=(*decided.notes, *_action_notes(observed, decided)))


def _decide(observed: Observation, rollout: Rollout | None, policy: Policy, now: datetime) -> Plan:
    if rollout is not None and rollout.active:
        return _advance(observed, rollout, policy, now)
    actions = steady(observed, rollout)
    target, current = observed.target_revision, observed.current_revision
    if (
        target is not None
        and current is not None
        and target != current
        and (observed.may_start or observed.start_requested)
        and not observed.paused
        and (observed.start_requested or not _stopped_on(rollout, target))
        and not actions
    ):
        started = Rollout(current, target, now, phase="Pausing", phase_since=now)
        event = Event("Normal", "RollingUpgradeStarted", f"upgrading from {current} to {target}")
        first = _advance(observed, started, policy, now)
        why = "a user asked" if observed.start_requested else "a new target revision"
        note = f"upgrade {current} -> {target}: starting ({why})"
        return replace(first, events=(event, *first.events), notes=(note, *first.notes))
    return Plan(tuple(actions), rollout, (), 30.0, (_idle_note(observed, rollout),))


def _idle_note(observed: Observation, rollout: Rollout | None) -> str:
    """Why no upgrade runs or starts: the first condition of `_decide` that does not hold."""
    target, current = observed.target_revision, observed.current_revision
    whole = _presence(observed)
    if target is None:
        return f"no upgrade: no target revision known, {whole}"
    if current is None:
        return f"no upgrade: no current revision to upgrade from, {whole}"
    if target == current:
        return f"no upgrade: fleet at target {target}, {whole}"
    upgrade = f"{current} -> {target}"
    if not (observed.may_start or observed.start_requested):
        return f"no upgrade: {upgrade} may not start by itself (waits for a start request)"
    if observed.paused:
        return f"no upgrade: {upgrade} held while the ScaleSet is paused"
    if rollout is not None and not observed.start_requested and _stopped_on(rollout, target):
        ended = rollout.code + (f" ({rollout.error_code})" if rollout.error_code else "")
        return f"no upgrade: the upgrade to {target} ended {ended}; not retried until a user asks"
    return f"no upgrade yet: {upgrade} waits for the fleet to be whole, {whole}"


def _stopped_on(rollout: Rollout | None, target: str) -> bool:
    """A faulted (or cancelled) upgrade to `target` is not retried by itself."""
    return rollout is not None and rollout.to_revision == target and rollout.code != "Completed"


def _advance(observed: Observation, rollout: Rollout, policy: Policy, now: datetime) -> Plan:
    if rollout.phase in ("Replacing", "Waiting"):
        step = _replacing if rollout.phase == "Replacing" else _waiting
        running = step(observed, rollout, policy, now)
        # A cancel or a pause holds back the next batch only; say so while this one runs.
        held = [
            f"{why}: batch {rollout.batch} finishes, {then}"
            for why, then, holds in (
                ("cancel requested", "no batch starts after it", _cancelling(observed, rollout)),
                ("ScaleSet paused", "the next one waits for resume", observed.paused),
            )
            if holds
        ]
        return replace(running, notes=(*held, *running.notes))
    if rollout.phase == "RollingBack":
        return _rolling_back(observed, rollout, policy, now)
    return _between_batches(observed, rollout, policy, now)


def _replace(
    observed: Observation, rollout: Rollout, indexes: Sequence[int], version: str
) -> list[Create | Delete]:
    """Delete members still on another version; create the missing at `version`."""
    actions: list[Create | Delete] = []
    seen = _by_index(observed.instances)
    for index in indexes:
        instance = seen.get(index)
        if instance is None or not instance.exists:
            actions.append(Create(index, version))
        elif instance.revision != version and not instance.deleting:
            actions.append(Delete(index, f"{_UPGRADE_TO}{version}"))
    return actions


def _settled(observed: Observation, indexes: Sequence[int], version: str) -> bool:
    """Every instance in `indexes` exists on `version` and is not being deleted."""
    seen = _by_index(observed.instances)
    return all(
        (i := seen.get(index)) is not None and i.exists and not i.deleting and i.revision == version
        for index in indexes
    )


def _replacing(observed: Observation, rollout: Rollout, policy: Policy, now: datetime) -> Plan:
    others = [a for a in steady(observed, rollout) if a.index not in rollout.members]
    actions = _replace(observed, rollout, rollout.members, rollout.to_revision)
    label = f"batch {rollout.batch} of {_batches(observed, rollout, policy)}"
    if actions or not _settled(observed, rollout.members, rollout.to_revision):
        note = _progress(observed, rollout.members, rollout.to_revision, label)
        return Plan(tuple(others + actions), rollout, (), 1.0, (note,))
    waiting = replace(rollout, phase="Waiting", phase_since=now)
    settled = f"{_instances(rollout.members)} on {rollout.to_revision}: checking health"
    following = _waiting(observed, waiting, policy, now)
    notes = (settled, *following.notes)
    later = [a for a in following.actions if a not in others]
    if later:
        # This decision applies only the steady actions; what the rest of it planned (the
        # next batch, a rollback) the next decision plans again from the new state.
        notes = (*notes, f"left to the next decision: {_action_list(later)}")
    return replace(following, actions=tuple(others), notes=notes)


def _waiting(observed: Observation, rollout: Rollout, policy: Policy, now: datetime) -> Plan:
    seen = _by_index(observed.instances)
    if not _settled(observed, rollout.members, rollout.to_revision):
        # A member vanished or is going away (deleted by someone else, evicted): that
        # says nothing about the version. Put it back, then wait again.
        gone = _unsettled(observed, rollout.members, rollout.to_revision)
        note = (
            f"batch {rollout.batch}: {gone} during the health check; not counted as "
            f"unhealthy, put back on {rollout.to_revision}"
        )
        restored = _replacing(observed, replace(rollout, phase="Replacing"), policy, now)
        return replace(restored, notes=(note, *restored.notes))
    states = {
        index: health(seen.get(index, Instance(index, exists=False)), policy, now)
        for index in rollout.members
    }
    pending = [i for i, h in states.items() if h == "Initializing"]
    others = tuple(a for a in steady(observed, rollout) if a.index not in rollout.members)
    label = f"batch {rollout.batch} of {_batches(observed, rollout, policy)}"
    if pending:
        notes = (f"{label}: {_health_count(states)}", *_pending_notes(seen, pending, policy, now))
        return Plan(others, rollout, (), _next_health_change(seen, pending, policy, now), notes)
    healthy = tuple(sorted(i for i, h in states.items() if h == "Healthy"))
    unhealthy = tuple(sorted(i for i, h in states.items() if h == "Unhealthy"))
    upgraded = tuple(sorted({*rollout.upgraded, *healthy, *unhealthy}))
    failed = tuple(sorted({*rollout.failed, *unhealthy}))
    done = replace(rollout, upgraded=upgraded, failed=failed, members=())
    batch_event = Event(
        "Normal" if not unhealthy else "Warning",
        "BatchCompleted",
        f"batch {rollout.batch}: {len(healthy)} healthy, {len(unhealthy)} unhealthy on "
        f"{rollout.to_revision}",
    )
    limit = policy.max_unhealthy_upgraded_percent
    budget = (
        f"{len(failed)} of {len(upgraded)} upgraded unhealthy, at most "
        f"{limit * len(upgraded) // 100} allowed ({limit}%)"
    )
    checked = (
        f"{label} done: {len(healthy)} healthy, {len(unhealthy)} unhealthy"
        + (f" ({_instances(unhealthy)})" if unhealthy else "")
        + f" on {rollout.to_revision}",
        budget,
    )
    if len(failed) * 100 > limit * len(upgraded):
        message = (
            f"{len(failed)} of {len(upgraded)} upgraded instances are unhealthy "
            f"(more than {limit}%)"
        )
        faulted = replace(
            done, code="Faulted", error_code=UPGRADED, error_message=message, phase_since=now
        )
        events = (batch_event, Event("Warning", "RollingUpgradeFaulted", message))
        stopped = (*checked[:-1], f"{budget}: Faulted")
        if policy.rollback and failed:
            back = replace(faulted, phase="RollingBack", members=failed)
            plan_ = _rolling_back(observed, back, policy, now)
            source = rollout.from_revision or "no recorded revision"
            going = f"rollback on: {_instances(failed)} go back to {source}"
            return replace(
                plan_, events=events + plan_.events, notes=(*stopped, going, *plan_.notes)
            )
        kept = f"rollback off: {_instances(failed)} stay on {rollout.to_revision}"
        return Plan(others, replace(faulted, phase="Done"), events, 30.0, (*stopped, kept))
    remaining = [
        i
        for i in range(observed.capacity)
        if i not in upgraded and not _runs(seen.get(i), done.to_revision)
    ]
    if not remaining:
        completed = replace(done, code="Completed", phase="Done", phase_since=now)
        message = f"all {observed.capacity} instances run {rollout.to_revision}"
        return Plan(
            others,
            completed,
            (batch_event, Event("Normal", "RollingUpgradeCompleted", message)),
            30.0,
            (
                *checked,
                f"completed: {message}"
                + (f", {_instances(failed)} unhealthy" if failed else ""),
            ),
        )
    pausing = replace(done, phase="Pausing", phase_since=now)
    if policy.pause <= timedelta(0):
        # No pause between batches: the next batch starts in this same decision.
        following = _between_batches(observed, pausing, policy, now)
        return replace(
            following,
            events=(batch_event, *following.events),
            notes=(*checked, "no pause between batches", *following.notes),
        )
    note = f"pausing {_duration(policy.pause)} before batch {rollout.batch + 1}"
    if _cancelling(observed, rollout):
        note = f"pausing {_duration(policy.pause)}, then stopping: cancel requested"
    return Plan(
        others, pausing, (batch_event,), max(1.0, policy.pause.total_seconds()), (*checked, note)
    )


def _between_batches(
    observed: Observation, rollout: Rollout, policy: Policy, now: datetime
) -> Plan:
    others = tuple(steady(observed, rollout))
    since = rollout.phase_since or now
    following = rollout.batch + 1
    if rollout.batch > 0 and now - since < policy.pause:
        left = policy.pause - (now - since)
        note = (
            f"pausing: batch {following} may start in {_duration(left)} "
            f"(pause {_duration(policy.pause)} after batch {rollout.batch})"
        )
        if _cancelling(observed, rollout):
            note = f"pausing: {_duration(left)} left, then stopping: cancel requested"
        return Plan(others, rollout, (), left.total_seconds(), (note,))
    upgraded = f"{len(rollout.upgraded)} of {observed.capacity} upgraded"
    if _cancelling(observed, rollout):
        cancelled = replace(rollout, code="Cancelled", phase="Done", phase_since=now)
        rest = f"on {rollout.from_revision}" if rollout.from_revision else "as they are"
        return Plan(
            others,
            cancelled,
            (Event("Normal", "RollingUpgradeCancelled", f"cancelled after batch {rollout.batch}"),),
            30.0,
            (f"cancelled after batch {rollout.batch}: {upgraded}, the others stay {rest}",),
        )
    if observed.paused:
        note = f"paused: batch {following} waits for the ScaleSet to be resumed ({upgraded})"
        return Plan(others, rollout, (), 30.0, (note,))
    seen = _by_index(observed.instances)
    unhealthy = [
        i
        for i in range(observed.capacity)
        if health(seen.get(i, Instance(i, exists=False)), policy, now) == "Unhealthy"
    ]
    limit = policy.max_unhealthy_percent
    check = (
        f"before batch {following}: {len(unhealthy)} of {observed.capacity} unhealthy"
        + (f" ({_instances(unhealthy)})" if unhealthy else "")
        + f", at most {limit * observed.capacity // 100} allowed ({limit}%)"
    )
    if len(unhealthy) * 100 > policy.max_unhealthy_percent * observed.capacity:
        message = (
            f"{len(unhealthy)} of {observed.capacity} instances are unhealthy before batch "
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
        return Plan(
            others,
            stopped,
            (Event("Warning", "RollingUpgradeFaulted", message),),
            30.0,
            (f"{check}: Faulted",),
        )
    candidates = [
        i
        for i in range(observed.capacity)
        if i not in rollout.upgraded and not _runs(seen.get(i), rollout.to_revision)
    ]
    if not candidates:
        completed = replace(rollout, code="Completed", phase="Done", phase_since=now)
        message = f"all {observed.capacity} instances run {rollout.to_revision}"
        return Plan(
            others,
            completed,
            (Event("Normal", "RollingUpgradeCompleted", message),),
            30.0,
            (check, f"completed: {message}"),
        )
    if policy.prioritize_unhealthy:
        candidates.sort(key=lambda i: (i not in unhealthy, i))
    size = batch_size(observed.capacity, policy.max_batch_percent)
    members = tuple(sorted(candidates[:size]))
    started = replace(
        rollout, phase="Replacing", batch=rollout.batch + 1, members=members, phase_since=now
    )
    event = Event(
        "Normal",
        "BatchStarted",
        f"batch {started.batch} of "
        f"{rollout.batch + total_batches(len(candidates), size)}: instances "
        f"{', '.join(map(str, members))} to {rollout.to_revision}",
    )
    notes = [check]
    skipped = [
        i
        for i in range(observed.capacity)
        if i not in rollout.upgraded and _runs(seen.get(i), rollout.to_revision)
    ]
    if skipped:
        notes.append(f"{_instances(skipped)} already on {rollout.to_revision}: not replaced")
    first = [i for i in members if i in unhealthy]
    if policy.prioritize_unhealthy and first:
        notes.append(f"unhealthy first: {_instances(first)}")
    notes.append(
        f"batch {started.batch} of {rollout.batch + total_batches(len(candidates), size)}: "
        f"replacing {_instances(members)} ({_batch_rule(observed.capacity, policy)})"
    )
    replaced = _replacing(observed, started, policy, now)
    return replace(replaced, events=(event, *replaced.events), notes=(*notes, *replaced.notes))


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
        and instance.revision == version
    )


def _rolling_back(observed: Observation, rollout: Rollout, policy: Policy, now: datetime) -> Plan:
    version = rollout.from_revision
    others = tuple(a for a in steady(observed, rollout) if a.index not in rollout.members)
    if version is None:
        # Nothing to go back to (the upgrade had no source revision): end the rollback.
        note = "rollback: no previous revision recorded, nothing to go back to"
        return Plan(others, replace(rollout, phase="Done"), (), 30.0, (note,))
    actions = _replace(observed, rollout, rollout.members, version)
    rolled = replace(rollout, rolled_back=tuple(sorted({*rollout.rolled_back, *rollout.members})))
    label = f"rollback of {_instances(rollout.members)}"
    if actions or not _settled(observed, rollout.members, version):
        note = _progress(observed, rollout.members, version, label)
        return Plan(others + tuple(actions), rolled, (), 1.0, (note,))
    seen = _by_index(observed.instances)
    states = {index: health(seen[index], policy, now) for index in rollout.members}
    pending = [i for i, h in states.items() if h == "Initializing"]
    if pending:  # the rollback ends when its instances are healthy again (or not)
        notes = (
            f"{label}: {_health_count(states)} on {version}",
            *_pending_notes(seen, pending, policy, now),
        )
        return Plan(others, rolled, (), _next_health_change(seen, pending, policy, now), notes)
    bad = [i for i, h in states.items() if h == "Unhealthy"]
    message = f"instances {', '.join(map(str, rollout.members))} are back on {version}" + (
        f"; {', '.join(map(str, bad))} unhealthy there too" if bad else ", healthy"
    )
    done = replace(rolled, phase="Done", members=())
    return Plan(
        others,
        done,
        (Event("Warning" if bad else "Normal", "RolledBack", message),),
        30.0,
        (f"rollback done: {message}",),
    )


# ---------------------------------------------------------------------------
# Notes: the words and numbers of each decision. Nothing here decides anything.


def _instances(indexes: Iterable[int]) -> str:
    """Indexes as a phrase, runs of three or more shortened.

    >>> _instances([3]), _instances([2, 3]), _instances([0, 1, 2, 3, 7]), _instances([])
    ('instance 3', 'instances 2, 3', 'instances 0-3, 7', 'no instance')
    """
    ordered = sorted(indexes)
    if not ordered:
        return "no instance"
    runs: list[list[int]] = []
    for index in ordered:
        if runs and index == runs[-1][-1] + 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    parts = [
        f"{run[0]}-{run[-1]}" if len(run) >= 3 else ", ".join(map(str, run)) for run in runs
    ]
    return ("instance " if len(ordered) == 1 else "instances ") + ", ".join(parts)


def _duration(span: timedelta) -> str:
    """A span as "4m10s", rounded up to the second (a wait is never under-announced).

    >>> _duration(timedelta(seconds=250)), _duration(timedelta(seconds=0.2))
    ('4m10s', '1s')
    >>> _duration(timedelta(hours=1)), _duration(timedelta(0))
    ('1h', '0s')
    """
    seconds = max(0, math.ceil(span.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n]
    return "".join(parts) or "0s"


def _cancelling(observed: Observation, rollout: Rollout) -> bool:
    """A cancel was asked for (now, or recorded in the rollout state)."""
    return observed.cancel or rollout.cancel_requested


def _health_count(states: dict[int, Health]) -> str:
    """ "1 of 2 healthy", with the unhealthy named: "0 of 2 healthy, instance 1 unhealthy"."""
    healthy = sum(h == "Healthy" for h in states.values())
    unhealthy = [i for i, h in states.items() if h == "Unhealthy"]
    return f"{healthy} of {len(states)} healthy" + (
        f", {_instances(unhealthy)} unhealthy" if unhealthy else ""
    )


def _presence(observed: Observation) -> str:
    """How much of the fleet exists: "9 of 10 present" (", 2 above capacity")."""
    existing = [i for i in observed.instances if i.exists]
    present = sum(i.index < observed.capacity for i in existing)
    above = len(existing) - present
    return f"{present} of {observed.capacity} present" + (
        f", {above} above capacity" if above else ""
    )


def _batch_rule(capacity: int, policy: Policy) -> str:
    """How the batch size came about: "2 per batch: 20% of 10" (", at least 1")."""
    size = batch_size(capacity, policy.max_batch_percent)
    share = capacity * policy.max_batch_percent // 100
    return f"{size} per batch: {policy.max_batch_percent}% of {capacity}" + (
        ", at least 1" if share < size else ""
    )


def _batches(observed: Observation, rollout: Rollout, policy: Policy) -> int:
    """Batches as the running one sees them: those started, and those the instances not
    yet upgraded, not in the running batch and not already on the target still need."""
    seen = _by_index(observed.instances)
    left = [
        i
        for i in range(observed.capacity)
        if i not in rollout.upgraded
        and i not in rollout.members
        and not _runs(seen.get(i), rollout.to_revision)
    ]
    size = batch_size(observed.capacity, policy.max_batch_percent)
    return rollout.batch + total_batches(len(left), size)


def _progress(observed: Observation, indexes: Sequence[int], version: str, label: str) -> str:
    """How far the replacement of `indexes` by `version` is: "batch 2 of 5: 1 of 2 on
    1.0.2, instance 3 still deleting"."""
    seen = _by_index(observed.instances)
    there = [i for i in indexes if _settled(observed, (i,), version)]
    deleting = [i for i in indexes if (x := seen.get(i)) is not None and x.exists and x.deleting]
    return f"{label}: {len(there)} of {len(indexes)} on {version}" + (
        f", {_instances(deleting)} still deleting" if deleting else ""
    )


def _unsettled(observed: Observation, indexes: Sequence[int], version: str) -> str:
    """What keeps members from being settled on `version`: "instance 3 gone"."""
    seen = _by_index(observed.instances)
    gone, deleting, other = [], [], []
    for index in indexes:
        instance = seen.get(index)
        if instance is None or not instance.exists:
            gone.append(index)
        elif instance.deleting:
            deleting.append(index)
        elif instance.revision != version:
            other.append(index)
    parts = [
        f"{_instances(found)} {what}"
        for found, what in (
            (gone, "gone"),
            (deleting, "being deleted"),
            (other, "on another revision"),
        )
        if found
    ]
    return ", ".join(parts)


def _pending_notes(
    seen: dict[int, Instance], pending: Sequence[int], policy: Policy, now: datetime
) -> list[str]:
    """What each Initializing member waits for, members with the same wait together:
    "waiting: instance 3 Initializing, health timeout in 4m10s"."""
    waits: dict[str, list[int]] = {}
    for index in pending:
        instance = seen[index]
        if instance.ready and instance.ready_since is not None:
            left = instance.ready_since + policy.min_ready - now
            wait = f"Ready, Healthy after minReady in {_duration(left)}"
        elif instance.created is not None:
            left = instance.created + policy.health_timeout - now
            wait = f"Initializing, health timeout in {_duration(left)}"
        else:
            wait = "Initializing, creation time unknown"
        waits.setdefault(wait, []).append(index)
    return [f"waiting: {_instances(indexes)} {wait}" for wait, indexes in waits.items()]


def _action_list(actions: Sequence[Create | Delete]) -> str:
    """Actions in short: "delete 2, 3 and create 4 on 1.0.0"."""
    groups: dict[str, list[int]] = {}
    for action in actions:
        key = "delete" if isinstance(action, Delete) else f"create on {action.revision}"
        groups.setdefault(key, []).append(action.index)
    return " and ".join(
        f"{key.split(' ', 1)[0]} {', '.join(map(str, sorted(indexes)))}"
        + (f" {key.split(' ', 1)[1]}" if " " in key else "")
        for key, indexes in groups.items()
    )


def _action_notes(observed: Observation, decided: Plan) -> list[str]:
    """One note per group of the plan's actions, in the order they come.

    Deletions for an upgrade or a rollback ("deleting instance 4: it comes back on
    1.0.2 with the same data disks"), scale-in, re-creations of members ("creating
    instances 0, 1 on 1.0.2, keeping their indexes and data disks") and creations of
    missing instances ("creating missing instance 7 on 1.0.0 (9 of 10 present)")."""
    rollout = decided.rollout
    members = set(rollout.members) if rollout is not None and rollout.active else set()
    groups: dict[tuple[str, str], list[int]] = {}
    for action in decided.actions:
        if isinstance(action, Delete):
            key = ("delete", action.reason)
        else:
            key = ("create" if action.index in members else "missing", action.revision)
        groups.setdefault(key, []).append(action.index)
    notes = []
    for (kind, detail), indexes in groups.items():
        which, one = _instances(indexes), len(indexes) == 1
        if kind == "delete" and detail.startswith(_UPGRADE_TO):
            version = detail.removeprefix(_UPGRADE_TO)
            back = "it comes" if one else "they come"
            notes.append(f"deleting {which}: {back} back on {version} with the same data disks")
        elif kind == "delete" and detail == "ScaleIn":
            notes.append(
                f"scaling in to {observed.capacity}: deleting {which} (highest indexes first)"
            )
        elif kind == "delete":
            notes.append(f"deleting {which} ({detail})")
        elif kind == "create":
            its = "its index and data disks" if one else "their indexes and data disks"
            notes.append(f"creating {which} on {detail}, keeping {its}")
        else:
            notes.append(f"creating missing {which} on {detail} ({_presence(observed)})")
    return notes
