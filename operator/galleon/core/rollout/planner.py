"""The batched rolling upgrade as a state machine over the model's data.

`plan(observed, rollout, policy, now)` is the one entry point; the phase functions
below it (`_replacing`, `_waiting`, `_between_batches`, `_rolling_back`) each
handle one phase of a running rollout and hand over to the next in the same
decision where the rules allow. The rules are in the package docstring
(`galleon.core.rollout`).

Why this module is a little under 600 lines: it is one state machine whose phases
call each other; split, a reader would follow one decision across files.

Cost: one decision is O(n log n) in capacity n. Every rule is a pass over the
indexes with set or dict lookups (`Observation.by_index`, `Rollout.upgraded_set`,
each built once per object); only sorting is n log n. `hack/bench_planner.py`
measures it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from galleon.core import reasons
from galleon.core.rollout import notes as say
from galleon.core.rollout.model import (
    BEFORE,
    FAILED,
    UPGRADE_TO,
    UPGRADED,
    Action,
    Create,
    Delete,
    Event,
    Health,
    Hold,
    Instance,
    Notify,
    Observation,
    Plan,
    Policy,
    Rollout,
    all_settled,
    batch_size,
    health,
    member_health,
    notice_of,
    runs_on,
    settled_on,
    total_batches,
)


def steady(observed: Observation, rollout: Rollout | None) -> list[Create | Delete]:
    """Keep `capacity` instances, as a StatefulSet would: create the missing (at the
    version they should run), delete the failed ones (evicted: they never run again
    by themselves) so that the next pass re-creates them the same way, and delete
    those beyond capacity (highest indexes first). Callers leave out the members of a
    running batch or rollback: those are judged, not repaired.

    >>> fleet = [Instance(0, "1.0.0"), Instance(1, "1.0.0", failed=True)]
    >>> steady(Observation(3, fleet, "1.0.0", "1.0.0"), None)
    [Create(index=2, revision='1.0.0'), Delete(index=1, reason='Failed')]
    """
    creates: list[Create | Delete] = []
    repairs: list[Create | Delete] = []
    seen = observed.by_index
    for index in range(observed.capacity):
        instance = seen.get(index)
        if instance is not None and instance.exists and (not instance.failed or instance.deleting):
            continue  # running, or already going
        version = _version_for(index, observed, rollout)
        if version is None:
            continue  # Why: nothing to re-create it at; a failed pod is kept, as evidence.
        if instance is None or not instance.exists:
            creates.append(Create(index, version))
        else:
            repairs.append(Delete(index, FAILED))
    beyond = [
        i
        for i in observed.instances
        if i.index >= observed.capacity and i.exists and not i.deleting
    ]
    scale_in = [Delete(i.index, "ScaleIn") for i in sorted(beyond, key=lambda i: -i.index)]
    return creates + repairs + scale_in


def _version_for(index: int, observed: Observation, rollout: Rollout | None) -> str | None:
    """Which version a missing instance comes back at."""
    if rollout is None or not rollout.active:
        if rollout is not None and rollout.code == "Completed":
            return rollout.to_revision
        return observed.current_revision or observed.target_revision
    if index in rollout.rolled_back_set:
        return rollout.from_revision
    if index in rollout.upgraded_set or index in rollout.member_set:
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
    batch 1 of 5: 0 of 2 on 1.0.2, health timeout in 5m
    deleting instances 0, 1: they come back on 1.0.2 with the same data disks

    Nothing to do says so too:

    >>> plan(Observation(10, fleet, "1.0.0", "1.0.0"), None, Policy(), t).notes
    ('no upgrade: fleet at target 1.0.0, 10 of 10 present',)
    """
    decided = _decide(observed, rollout, policy, now)

    def comes_back(index: int) -> str | None:  # where a failed instance deleted now returns
        return _version_for(index, observed, decided.rollout)

    return replace(
        decided,
        notes=(
            *decided.notes,
            *say.action_notes(observed, decided, comes_back, in_place=policy.in_place),
        ),
    )


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
        and not observed.holds
        and (observed.start_requested or not _stopped_on(rollout, target))
        and _whole(observed, actions)
    ):
        started = Rollout(current, target, now, phase="Pausing", phase_since=now)
        event = Event(
            "Normal", reasons.ROLLING_UPGRADE_STARTED, f"upgrading from {current} to {target}"
        )
        first = _advance(observed, started, policy, now)
        why = "a user asked" if observed.start_requested else "a new target revision"
        note = f"upgrade {current} -> {target}: starting ({why})"
        return replace(first, events=(event, *first.events), notes=(note, *first.notes))
    note = _idle_note(observed, rollout)
    return Plan(tuple(actions), rollout, (), _until_lifted(observed.holds, now), (note,))


def _until_lifted(holds: Sequence[Hold], now: datetime, default: float = 30.0) -> float:
    """Seconds until the planner looks again: `default`, or sooner when a hold says it
    lifts before then (at least 1 s: the pass that sees it lifted comes just after).

    >>> from datetime import datetime, timezone
    >>> t = datetime(2026, 3, 29, 0, 50, tzinfo=timezone.utc)
    >>> _until_lifted([Hold("OutsideMaintenanceWindow", "", t + timedelta(seconds=12))], t)
    12.0
    >>> _until_lifted([Hold("VersionQuarantined", "")], t)
    30.0
    """
    waits = [(h.until - now).total_seconds() for h in holds if h.until is not None]
    return min([default, *(max(1.0, wait) for wait in waits)])


def _whole(observed: Observation, actions: Sequence[Create | Delete]) -> bool:
    """The fleet is whole (an upgrade may start): nothing to create or scale in, and
    no failed instance below capacity (one is being replaced: deleted, not yet gone)."""
    return not actions and not any(
        i.failed and i.exists and i.index < observed.capacity for i in observed.instances
    )


def _idle_note(observed: Observation, rollout: Rollout | None) -> str:
    """Why no upgrade runs or starts: the first condition of `_decide` that does not hold."""
    target, current = observed.target_revision, observed.current_revision
    whole = say.presence(observed)
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
    if observed.holds:
        return f"no upgrade: {upgrade} {say.holds(observed.holds)}"
    if rollout is not None and not observed.start_requested and _stopped_on(rollout, target):
        ended = rollout.code + (f" ({rollout.error_code})" if rollout.error_code else "")
        return f"no upgrade: the upgrade to {target} ended {ended}; not retried until a user asks"
    return f"no upgrade yet: {upgrade} waits for the fleet to be whole, {whole}"


def _stopped_on(rollout: Rollout | None, target: str) -> bool:
    """A faulted (or cancelled) upgrade to `target` is not retried by itself."""
    return rollout is not None and rollout.to_revision == target and rollout.code != "Completed"


def _advance(observed: Observation, rollout: Rollout, policy: Policy, now: datetime) -> Plan:
    if rollout.batch_since is None and rollout.phase in ("Replacing", "Waiting", "RollingBack"):
        # Why: a record of an older galleon has no batch start; its phase's start stands
        # in, pinned now so that the phase changes below do not move it.
        rollout = replace(rollout, batch_since=rollout.batch_start)
    beyond = [m for m in rollout.members if m >= observed.capacity]
    if beyond:
        # Scaled in under the running batch: those members are not replaced but removed
        # (scale-in), and the batch goes on with the rest.
        kept = tuple(m for m in rollout.members if m < observed.capacity)
        advanced = _advance(observed, replace(rollout, members=kept), policy, now)
        note = (
            f"scaled in to {observed.capacity}: {say.instances(beyond)} leave batch "
            f"{rollout.batch} and are removed, not replaced"
        )
        return replace(advanced, notes=(note, *advanced.notes))
    if rollout.phase in ("Replacing", "Waiting"):
        step = _replacing if rollout.phase == "Replacing" else _waiting
        running = step(observed, rollout, policy, now)
        # A cancel or a pause holds back the next batch only; say so while this one runs.
        held = [
            f"{why}: batch {rollout.batch} finishes, {then}"
            for why, then, holds in (
                ("cancel requested", "no batch starts after it", say.cancelling(observed, rollout)),
                ("ScaleSet paused", "the next one waits for resume", observed.paused),
            )
            if holds
        ]
        held += [
            f"batch {rollout.batch} finishes, the next one waits: {say.hold(hold)}"
            for hold in observed.holds
        ]
        return replace(running, notes=(*held, *running.notes))
    if rollout.phase == "RollingBack":
        return _rolling_back(observed, rollout, policy, now)
    return _between_batches(observed, rollout, policy, now)


def _replace(observed: Observation, indexes: Sequence[int], version: str) -> list[Create | Delete]:
    """Delete members still on another version; create the missing at `version`."""
    actions: list[Create | Delete] = []
    seen = observed.by_index
    for index in indexes:
        instance = seen.get(index)
        if instance is None or not instance.exists:
            actions.append(Create(index, version))
        elif instance.revision != version and not instance.deleting:
            actions.append(Delete(index, f"{UPGRADE_TO}{version}"))
    return actions


def _deferred(
    observed: Observation,
    rollout: Rollout,
    policy: Policy,
    actions: Sequence[Create | Delete],
    now: datetime,
) -> tuple[list[Action], dict[int, datetime], list[str]]:
    """Upgrade deferral applied to a batch's replacements: (the actions to take, member
    → deadline of those that wait for approval, notes). A member on another revision is
    told first (`Notify`); it is deleted once it approved, or at the deadline it was
    told. Without deferral, `actions` as they are.

    >>> from datetime import datetime, timezone
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> seen = Observation(2, [Instance(0, "1.0.0"), Instance(1, "1.0.0")], "1.0.0", "1.0.2")
    >>> r = Rollout("1.0.0", "1.0.2", t, batch=1, members=(0,))
    >>> taken, waiting, _ = _deferred(seen, r, Policy(deferral=timedelta(hours=1)),
    ...                               [Delete(0, "Upgrade to 1.0.2")], t)
    >>> [type(a).__name__ for a in taken], [f"{d:%H:%M}" for d in waiting.values()]
    (['Notify'], ['01:00'])
    """
    if policy.deferral is None:
        return list(actions), {}, []
    seen, version = observed.by_index, rollout.to_revision
    taken: list[Action] = []
    waiting: dict[int, datetime] = {}
    told: list[int] = []
    approved: list[int] = []
    expired: list[int] = []
    for action in actions:
        if not isinstance(action, Delete) or not action.reason.startswith(UPGRADE_TO):
            taken.append(action)
            continue
        instance = seen.get(action.index)
        if instance is None or instance.failed:
            # Why: a pod that failed for good runs nothing that could read a notice.
            taken.append(action)
            continue
        notice = notice_of(instance, rollout)
        if notice is None:
            deadline = now + policy.deferral
            taken.append(Notify(action.index, version, now, deadline))
            waiting[action.index] = deadline
            told.append(action.index)
        elif instance is not None and instance.approved:
            taken.append(action)
            approved.append(action.index)
        elif now >= notice.deadline:
            taken.append(action)
            expired.append(action.index)
        else:
            waiting[action.index] = notice.deadline
    label = f"batch {rollout.batch}"
    notes = []
    if told:
        notes.append(
            f"{label}: telling {say.instances(told)} that an upgrade to {version} is "
            f"pending: replaced once approved, at the latest in "
            f"{say.duration(policy.deferral)}"
        )
    if approved:
        notes.append(f"{label}: {say.instances(approved)} approved the upgrade: replacing")
    if expired:
        notes.append(
            f"{label}: deferral of {say.instances(expired)} ended without approval: replacing"
        )
    for index, deadline in sorted(waiting.items()):
        if index not in told:
            notes.append(
                f"{label}: {say.instances([index])} waits for approval (deferral ends in "
                f"{say.duration(deadline - now)})"
            )
    return taken, waiting, notes


def _replacing(observed: Observation, rollout: Rollout, policy: Policy, now: datetime) -> Plan:
    members, version = rollout.member_set, rollout.to_revision
    others = [a for a in steady(observed, rollout) if a.index not in members]
    actions, waiting, deferral_notes = _deferred(
        observed, rollout, policy, _replace(observed, rollout.members, version), now
    )
    released = any(isinstance(a, Delete) and a.reason.startswith(UPGRADE_TO) for a in actions)
    if policy.deferral is not None and released:
        # Why: the batch's health timeout counts from when its last member waiting for
        # approval was let go, not from the notice: a deferral never faults a batch.
        rollout = replace(rollout, batch_since=now)
    if waiting:
        # Members still wait for approval: the health timeout does not run yet.
        wake = min(30.0, max(1.0, (min(waiting.values()) - now).total_seconds()))
        return Plan((*others, *actions), rollout, (), wake, tuple(deferral_notes))
    label = f"batch {rollout.batch} of {say.batches(observed, rollout, policy)}"
    settled = not actions and all_settled(observed, rollout.members, version)
    left = _timeout_left(rollout, policy, now)
    if not settled and left > timedelta(0):
        note = say.progress(observed, rollout.members, version, label, left)
        wake = _until_timeout(left)
        return Plan((*others, *actions), rollout, (), wake, (*deferral_notes, note))
    checking = replace(rollout, phase="Waiting", phase_since=now)
    if settled:
        first = f"{say.instances(rollout.members)} on {version}: checking health"
    else:
        # Why: a pod the apiserver refuses, or with no copy of its image in the region,
        # never comes; the batch is judged at its health timeout like any other.
        first = (
            f"{label}: health timeout ({say.duration(policy.health_timeout)}) passed since "
            f"the batch began, {say.unsettled(observed, rollout.members, version)}: "
            "judging the batch"
        )
    following = _waiting(observed, checking, policy, now)
    # The rest of this decision (the next batch, a rollback) is planned from the state
    # it returns, which is recorded before any of its actions is applied.
    return replace(following, notes=(first, *following.notes))


def _timeout_left(rollout: Rollout, policy: Policy, now: datetime) -> timedelta:
    """Time left until the health timeout of the running batch (or rollback), which
    counts from when it began."""
    return rollout.batch_start + policy.health_timeout - now


def _until_timeout(left: timedelta) -> float:
    """Seconds to wait while members are being replaced: until their health timeout
    (1 to 30 s). Every change of a member's pod (deleted, gone, created, Ready, failed)
    wakes the controller earlier, so waiting polls nothing."""
    return min(30.0, max(1.0, left.total_seconds()))


def _waiting(observed: Observation, rollout: Rollout, policy: Policy, now: datetime) -> Plan:
    seen, version, since = observed.by_index, rollout.to_revision, rollout.batch_start
    left = _timeout_left(rollout, policy, now)
    if left > timedelta(0) and not all_settled(observed, rollout.members, version):
        # A member vanished or is going away (deleted by someone else, evicted through
        # the API): that says nothing about the version. Put it back, then wait again;
        # the batch's health timeout still runs.
        gone = say.unsettled(observed, rollout.members, version)
        note = f"batch {rollout.batch}: {gone} during the health check; put back on {version}"
        restored = _replacing(observed, replace(rollout, phase="Replacing"), policy, now)
        return replace(restored, notes=(note, *restored.notes))
    states: dict[int, Health] = {
        index: member_health(seen.get(index), version, policy, since, now)
        for index in rollout.members
    }
    pending = [i for i, h in states.items() if h == "Initializing"]
    members = rollout.member_set
    others = tuple(a for a in steady(observed, rollout) if a.index not in members)
    label = f"batch {rollout.batch} of {say.batches(observed, rollout, policy)}"
    if pending:
        notes = (
            f"{label}: {say.health_count(states)}",
            *say.pending_notes(seen, pending, policy, now, since),
        )
        wake = _next_health_change(seen, pending, policy, now, since)
        return Plan(others, rollout, (), wake, notes)
    healthy = tuple(sorted(i for i, h in states.items() if h == "Healthy"))
    unhealthy = tuple(sorted(i for i, h in states.items() if h == "Unhealthy"))
    upgraded = tuple(sorted({*rollout.upgraded, *healthy, *unhealthy}))
    failed = tuple(sorted({*rollout.failed, *unhealthy}))
    done = replace(rollout, upgraded=upgraded, failed=failed, members=())
    batch_event = Event(
        "Normal" if not unhealthy else "Warning",
        reasons.BATCH_COMPLETED,
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
        + (f" ({say.instances(unhealthy)})" if unhealthy else "")
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
        events = (batch_event, Event("Warning", reasons.ROLLING_UPGRADE_FAULTED, message))
        stopped = (*checked[:-1], f"{budget}: Faulted")
        if policy.rollback and failed:
            back = replace(faulted, phase="RollingBack", members=failed, batch_since=now)
            plan_ = _rolling_back(observed, back, policy, now)
            source = rollout.from_revision or "no recorded revision"
            going = f"rollback on: {say.instances(failed)} go back to {source}"
            return replace(
                plan_, events=events + plan_.events, notes=(*stopped, going, *plan_.notes)
            )
        kept = f"rollback off: {say.instances(failed)} stay on {rollout.to_revision}"
        return Plan(others, replace(faulted, phase="Done"), events, 30.0, (*stopped, kept))
    upgraded_set = frozenset(upgraded)
    remaining = any(
        i not in upgraded_set and not runs_on(seen.get(i), done.to_revision)
        for i in range(observed.capacity)
    )
    if not remaining:
        completed = replace(done, code="Completed", phase="Done", phase_since=now)
        message = f"all {observed.capacity} instances run {rollout.to_revision}"
        return Plan(
            others,
            completed,
            (batch_event, Event("Normal", reasons.ROLLING_UPGRADE_COMPLETED, message)),
            30.0,
            (
                *checked,
                f"completed: {message}"
                + (f", {say.instances(failed)} unhealthy" if failed else ""),
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
    note = f"pausing {say.duration(policy.pause)} before batch {rollout.batch + 1}"
    if say.cancelling(observed, rollout):
        note = f"pausing {say.duration(policy.pause)}, then stopping: cancel requested"
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
            f"pausing: batch {following} may start in {say.duration(left)} "
            f"(pause {say.duration(policy.pause)} after batch {rollout.batch})"
        )
        if say.cancelling(observed, rollout):
            note = f"pausing: {say.duration(left)} left, then stopping: cancel requested"
        return Plan(others, rollout, (), left.total_seconds(), (note,))
    upgraded = f"{len(rollout.upgraded)} of {observed.capacity} upgraded"
    if say.cancelling(observed, rollout):
        cancelled = replace(rollout, code="Cancelled", phase="Done", phase_since=now)
        rest = f"on {rollout.from_revision}" if rollout.from_revision else "as they are"
        return Plan(
            others,
            cancelled,
            (
                Event(
                    "Normal",
                    reasons.ROLLING_UPGRADE_CANCELLED,
                    f"cancelled after batch {rollout.batch}",
                ),
            ),
            30.0,
            (f"cancelled after batch {rollout.batch}: {upgraded}, the others stay {rest}",),
        )
    if observed.paused:
        note = f"paused: batch {following} waits for the ScaleSet to be resumed ({upgraded})"
        return Plan(others, rollout, (), 30.0, (note,))
    seen, upgraded_set = observed.by_index, rollout.upgraded_set
    if observed.holds and any(
        i not in upgraded_set and not runs_on(seen.get(i), rollout.to_revision)
        for i in range(observed.capacity)
    ):
        # Why only with instances left: an upgrade with nothing left to replace completes
        # (no batch starts), whatever holds batches back.
        note = f"batch {following} waits ({upgraded}): {say.holds(observed.holds)}"
        return Plan(others, rollout, (), _until_lifted(observed.holds, now), (note,))
    unhealthy = [
        i
        for i in range(observed.capacity)
        if (instance := seen.get(i)) is None or health(instance, policy, now) == "Unhealthy"
    ]
    unhealthy_set = frozenset(unhealthy)
    limit = policy.max_unhealthy_percent
    check = (
        f"before batch {following}: {len(unhealthy)} of {observed.capacity} unhealthy"
        + (f" ({say.instances(unhealthy)})" if unhealthy else "")
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
            (Event("Warning", reasons.ROLLING_UPGRADE_FAULTED, message),),
            30.0,
            (f"{check}: Faulted",),
        )
    candidates = [
        i
        for i in range(observed.capacity)
        if i not in upgraded_set and not runs_on(seen.get(i), rollout.to_revision)
    ]
    if not candidates:
        completed = replace(rollout, code="Completed", phase="Done", phase_since=now)
        message = f"all {observed.capacity} instances run {rollout.to_revision}"
        return Plan(
            others,
            completed,
            (Event("Normal", reasons.ROLLING_UPGRADE_COMPLETED, message),),
            30.0,
            (check, f"completed: {message}"),
        )
    if policy.prioritize_unhealthy:
        candidates.sort(key=lambda i: (i not in unhealthy_set, i))
    size = batch_size(observed.capacity, policy.max_batch_percent)
    members = tuple(sorted(candidates[:size]))
    started = replace(
        rollout,
        phase="Replacing",
        batch=rollout.batch + 1,
        members=members,
        phase_since=now,
        batch_since=now,
    )
    event = Event(
        "Normal",
        reasons.BATCH_STARTED,
        f"batch {started.batch} of "
        f"{rollout.batch + total_batches(len(candidates), size)}: instances "
        f"{', '.join(map(str, members))} to {rollout.to_revision}",
    )
    notes = [check]
    skipped = [
        i
        for i in range(observed.capacity)
        if i not in upgraded_set and runs_on(seen.get(i), rollout.to_revision)
    ]
    if skipped:
        notes.append(f"{say.instances(skipped)} already on {rollout.to_revision}: not replaced")
    first = [i for i in members if i in unhealthy_set]
    if policy.prioritize_unhealthy and first:
        notes.append(f"unhealthy first: {say.instances(first)}")
    notes.append(
        f"batch {started.batch} of {rollout.batch + total_batches(len(candidates), size)}: "
        f"replacing {say.instances(members)} ({say.batch_rule(observed.capacity, policy)})"
    )
    replaced = _replacing(observed, started, policy, now)
    return replace(replaced, events=(event, *replaced.events), notes=(*notes, *replaced.notes))


def _next_health_change(
    seen: Mapping[int, Instance],
    pending: Sequence[int],
    policy: Policy,
    now: datetime,
    since: datetime,
) -> float:
    """Seconds until a pending member's health can change without any event: its
    minimum ready time passes, or the batch's health timeout (counted from `since`,
    when the batch began) does (1 to 30 s; pod events wake the controller earlier
    when readiness flips)."""
    moments = [since + policy.health_timeout]
    for index in pending:
        instance = seen.get(index)
        if instance is not None and instance.ready and instance.ready_since is not None:
            moments.append(instance.ready_since + policy.min_ready)
    return min(30.0, max(1.0, (min(moments) - now).total_seconds()))


def _rolling_back(observed: Observation, rollout: Rollout, policy: Policy, now: datetime) -> Plan:
    version = rollout.from_revision
    members = rollout.member_set
    others = tuple(a for a in steady(observed, rollout) if a.index not in members)
    if version is None:
        # Nothing to go back to (the upgrade had no source revision): end the rollback.
        note = "rollback: no previous revision recorded, nothing to go back to"
        return Plan(others, replace(rollout, phase="Done"), (), 30.0, (note,))
    actions = _replace(observed, rollout.members, version)
    rolled = replace(rollout, rolled_back=tuple(sorted(rollout.rolled_back_set | members)))
    label = f"rollback of {say.instances(rollout.members)}"
    settled = not actions and all_settled(observed, rollout.members, version)
    left = _timeout_left(rollout, policy, now)
    if not settled and left > timedelta(0):
        note = say.progress(observed, rollout.members, version, label, left)
        return Plan(others + tuple(actions), rolled, (), _until_timeout(left), (note,))
    # The rollback ends when its instances are healthy again, or have used up the
    # health timeout, which counts from when the rollback began.
    seen, since = observed.by_index, rollout.batch_start
    states: dict[int, Health] = {
        index: member_health(seen.get(index), version, policy, since, now)
        for index in rollout.members
    }
    pending = [i for i, h in states.items() if h == "Initializing"]
    if pending:
        notes = (
            f"{label}: {say.health_count(states)} on {version}",
            *say.pending_notes(seen, pending, policy, now, since),
        )
        wake = _next_health_change(seen, pending, policy, now, since)
        return Plan(others, rolled, (), wake, notes)
    absent = [i for i in rollout.members if not settled_on(seen.get(i), version)]
    bad = [i for i, h in states.items() if h == "Unhealthy" and i not in absent]
    listed = ", ".join(map(str, rollout.members))
    message = (
        f"instances {listed} are back on {version}"
        if not absent
        else f"instances {listed} rolled back to {version}"
    )
    if bad:
        message += f"; {', '.join(map(str, bad))} unhealthy there too"
    if absent:
        message += f"; {', '.join(map(str, absent))} not there at the health timeout"
    if not bad and not absent:
        message += ", healthy"
    done = replace(rolled, phase="Done", members=())
    return Plan(
        others,
        done,
        (Event("Warning" if bad or absent else "Normal", reasons.ROLLED_BACK, message),),
        30.0,
        (f"rollback done: {message}",),
    )
