"""The batched rolling upgrade as a state machine over the model's data.

`plan(observed, rollout, policy, now)` is the one entry point; the phase functions
below it (`_replacing`, `_waiting`, `_between_batches`, `_rolling_back`) each
handle one phase of a running rollout and hand over to the next in the same
decision where the rules allow. The rules are in the package docstring
(`galleon.core.rollout`).

Why this module is a little over 400 lines: it is one state machine whose phases
call each other; split, a reader would follow one decision across files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from galleon.core import reasons
from galleon.core.rollout import notes as say
from galleon.core.rollout.model import (
    BEFORE,
    UPGRADE_TO,
    UPGRADED,
    Create,
    Delete,
    Event,
    Instance,
    Observation,
    Plan,
    Policy,
    Rollout,
    all_settled,
    batch_size,
    by_index,
    health,
    runs_on,
    total_batches,
)


def steady(observed: Observation, rollout: Rollout | None) -> list[Create | Delete]:
    """Keep `capacity` instances: create the missing (at the version they should run),
    delete those beyond capacity (highest indexes)."""
    actions: list[Create | Delete] = []
    seen = by_index(observed.instances)
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
    return replace(decided, notes=(*decided.notes, *say.action_notes(observed, decided)))


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
        event = Event(
            "Normal", reasons.ROLLING_UPGRADE_STARTED, f"upgrading from {current} to {target}"
        )
        first = _advance(observed, started, policy, now)
        why = "a user asked" if observed.start_requested else "a new target revision"
        note = f"upgrade {current} -> {target}: starting ({why})"
        return replace(first, events=(event, *first.events), notes=(note, *first.notes))
    return Plan(tuple(actions), rollout, (), 30.0, (_idle_note(observed, rollout),))


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
    if rollout is not None and not observed.start_requested and _stopped_on(rollout, target):
        ended = rollout.code + (f" ({rollout.error_code})" if rollout.error_code else "")
        return f"no upgrade: the upgrade to {target} ended {ended}; not retried until a user asks"
    return f"no upgrade yet: {upgrade} waits for the fleet to be whole, {whole}"


def _stopped_on(rollout: Rollout | None, target: str) -> bool:
    """A faulted (or cancelled) upgrade to `target` is not retried by itself."""
    return rollout is not None and rollout.to_revision == target and rollout.code != "Completed"


def _advance(observed: Observation, rollout: Rollout, policy: Policy, now: datetime) -> Plan:
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
        return replace(running, notes=(*held, *running.notes))
    if rollout.phase == "RollingBack":
        return _rolling_back(observed, rollout, policy, now)
    return _between_batches(observed, rollout, policy, now)


def _replace(
    observed: Observation, rollout: Rollout, indexes: Sequence[int], version: str
) -> list[Create | Delete]:
    """Delete members still on another version; create the missing at `version`."""
    actions: list[Create | Delete] = []
    seen = by_index(observed.instances)
    for index in indexes:
        instance = seen.get(index)
        if instance is None or not instance.exists:
            actions.append(Create(index, version))
        elif instance.revision != version and not instance.deleting:
            actions.append(Delete(index, f"{UPGRADE_TO}{version}"))
    return actions


def _replacing(observed: Observation, rollout: Rollout, policy: Policy, now: datetime) -> Plan:
    others = [a for a in steady(observed, rollout) if a.index not in rollout.members]
    actions = _replace(observed, rollout, rollout.members, rollout.to_revision)
    label = f"batch {rollout.batch} of {say.batches(observed, rollout, policy)}"
    if actions or not all_settled(observed, rollout.members, rollout.to_revision):
        note = say.progress(observed, rollout.members, rollout.to_revision, label)
        return Plan(tuple(others + actions), rollout, (), 1.0, (note,))
    waiting = replace(rollout, phase="Waiting", phase_since=now)
    settled = f"{say.instances(rollout.members)} on {rollout.to_revision}: checking health"
    following = _waiting(observed, waiting, policy, now)
    # The rest of this decision (the next batch, a rollback) is planned from the state
    # it returns, which is recorded before any of its actions is applied.
    return replace(following, notes=(settled, *following.notes))


def _waiting(observed: Observation, rollout: Rollout, policy: Policy, now: datetime) -> Plan:
    seen = by_index(observed.instances)
    if not all_settled(observed, rollout.members, rollout.to_revision):
        # A member vanished or is going away (deleted by someone else, evicted): that
        # says nothing about the version. Put it back, then wait again.
        gone = say.unsettled(observed, rollout.members, rollout.to_revision)
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
    label = f"batch {rollout.batch} of {say.batches(observed, rollout, policy)}"
    if pending:
        notes = (
            f"{label}: {say.health_count(states)}",
            *say.pending_notes(seen, pending, policy, now),
        )
        return Plan(others, rollout, (), _next_health_change(seen, pending, policy, now), notes)
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
            back = replace(faulted, phase="RollingBack", members=failed)
            plan_ = _rolling_back(observed, back, policy, now)
            source = rollout.from_revision or "no recorded revision"
            going = f"rollback on: {say.instances(failed)} go back to {source}"
            return replace(
                plan_, events=events + plan_.events, notes=(*stopped, going, *plan_.notes)
            )
        kept = f"rollback off: {say.instances(failed)} stay on {rollout.to_revision}"
        return Plan(others, replace(faulted, phase="Done"), events, 30.0, (*stopped, kept))
    remaining = [
        i
        for i in range(observed.capacity)
        if i not in upgraded and not runs_on(seen.get(i), done.to_revision)
    ]
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
    seen = by_index(observed.instances)
    unhealthy = [
        i
        for i in range(observed.capacity)
        if health(seen.get(i, Instance(i, exists=False)), policy, now) == "Unhealthy"
    ]
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
        if i not in rollout.upgraded and not runs_on(seen.get(i), rollout.to_revision)
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
        candidates.sort(key=lambda i: (i not in unhealthy, i))
    size = batch_size(observed.capacity, policy.max_batch_percent)
    members = tuple(sorted(candidates[:size]))
    started = replace(
        rollout, phase="Replacing", batch=rollout.batch + 1, members=members, phase_since=now
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
        if i not in rollout.upgraded and runs_on(seen.get(i), rollout.to_revision)
    ]
    if skipped:
        notes.append(f"{say.instances(skipped)} already on {rollout.to_revision}: not replaced")
    first = [i for i in members if i in unhealthy]
    if policy.prioritize_unhealthy and first:
        notes.append(f"unhealthy first: {say.instances(first)}")
    notes.append(
        f"batch {started.batch} of {rollout.batch + total_batches(len(candidates), size)}: "
        f"replacing {say.instances(members)} ({say.batch_rule(observed.capacity, policy)})"
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


def _rolling_back(observed: Observation, rollout: Rollout, policy: Policy, now: datetime) -> Plan:
    version = rollout.from_revision
    others = tuple(a for a in steady(observed, rollout) if a.index not in rollout.members)
    if version is None:
        # Nothing to go back to (the upgrade had no source revision): end the rollback.
        note = "rollback: no previous revision recorded, nothing to go back to"
        return Plan(others, replace(rollout, phase="Done"), (), 30.0, (note,))
    actions = _replace(observed, rollout, rollout.members, version)
    rolled = replace(rollout, rolled_back=tuple(sorted({*rollout.rolled_back, *rollout.members})))
    label = f"rollback of {say.instances(rollout.members)}"
    if actions or not all_settled(observed, rollout.members, version):
        note = say.progress(observed, rollout.members, version, label)
        return Plan(others + tuple(actions), rolled, (), 1.0, (note,))
    seen = by_index(observed.instances)
    states = {index: health(seen[index], policy, now) for index in rollout.members}
    pending = [i for i, h in states.items() if h == "Initializing"]
    if pending:  # the rollback ends when its instances are healthy again (or not)
        notes = (
            f"{label}: {say.health_count(states)} on {version}",
            *say.pending_notes(seen, pending, policy, now),
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
        (Event("Warning" if bad else "Normal", reasons.ROLLED_BACK, message),),
        30.0,
        (f"rollback done: {message}",),
    )
