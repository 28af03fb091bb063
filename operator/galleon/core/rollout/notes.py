"""The rollout planner's notes: the words and numbers of each decision.

Rules of this module: nothing here decides anything; every function turns facts the
planner already has into a phrase with its numbers ("batch 2 of 5: 1 of 2 on
1.0.2"), so the planner's notes and the golden logs read like an explanation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from galleon.core import times
from galleon.core.rollout.model import (
    FAILED,
    UPGRADE_TO,
    Action,
    Create,
    Delete,
    Health,
    Hold,
    Instance,
    Observation,
    Plan,
    Policy,
    Rollout,
    batch_size,
    runs_on,
    settled_on,
    total_batches,
)


def instances(indexes: Iterable[int]) -> str:
    """Indexes as a phrase, runs of three or more shortened.

    >>> instances([3]), instances([2, 3]), instances([0, 1, 2, 3, 7]), instances([])
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
    parts = [f"{run[0]}-{run[-1]}" if len(run) >= 3 else ", ".join(map(str, run)) for run in runs]
    return ("instance " if len(ordered) == 1 else "instances ") + ", ".join(parts)


def duration(span: timedelta) -> str:
    """A span as "4m10s", rounded up to the second (a wait is never under-announced).

    >>> duration(timedelta(seconds=250)), duration(timedelta(seconds=0.2))
    ('4m10s', '1s')
    >>> duration(timedelta(hours=1)), duration(timedelta(0))
    ('1h', '0s')
    """
    seconds = max(0, math.ceil(span.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n]
    return "".join(parts) or "0s"


def cancelling(observed: Observation, rollout: Rollout) -> bool:
    """A cancel was asked for (now, or recorded in the rollout state)."""
    return observed.cancel or rollout.cancel_requested


def hold(held: Hold) -> str:
    """A hold as a phrase: who holds, until when if known, and why.

    >>> from datetime import timezone
    >>> t = datetime(2026, 3, 29, 1, 0, tzinfo=timezone.utc)
    >>> hold(Hold("OutsideMaintenanceWindow", "opens at 03:00 in Berlin", t))
    'held by OutsideMaintenanceWindow until 2026-03-29T01:00:00Z: opens at 03:00 in Berlin'
    >>> hold(Hold("VersionQuarantined", "1.0.2 is quarantined"))
    'held by VersionQuarantined: 1.0.2 is quarantined'
    """
    until = f" until {times.format(held.until)}" if held.until is not None else ""
    return f"held by {held.reason}{until}: {held.message}"


def holds(held: Sequence[Hold]) -> str:
    """Several holds, in their order: "held by A ...; held by B ..."."""
    return "; ".join(hold(h) for h in held)


def health_count(states: dict[int, Health]) -> str:
    """ "1 of 2 healthy", with the unhealthy named: "0 of 2 healthy, instance 1 unhealthy"."""
    healthy = sum(h == "Healthy" for h in states.values())
    unhealthy = [i for i, h in states.items() if h == "Unhealthy"]
    return f"{healthy} of {len(states)} healthy" + (
        f", {instances(unhealthy)} unhealthy" if unhealthy else ""
    )


def presence(observed: Observation) -> str:
    """How much of the fleet exists: "9 of 10 present" (", 1 failed", ", 2 above
    capacity")."""
    present = failed = above = 0
    for instance in observed.instances:
        if not instance.exists:
            continue
        if instance.index >= observed.capacity:
            above += 1
        else:
            present += 1
            failed += instance.failed
    return (
        f"{present} of {observed.capacity} present"
        + (f", {failed} failed" if failed else "")
        + (f", {above} above capacity" if above else "")
    )


def batch_rule(capacity: int, policy: Policy) -> str:
    """How the batch size came about: "2 per batch: 20% of 10" (", at least 1")."""
    size = batch_size(capacity, policy.max_batch_percent)
    share = capacity * policy.max_batch_percent // 100
    return f"{size} per batch: {policy.max_batch_percent}% of {capacity}" + (
        ", at least 1" if share < size else ""
    )


def batches(observed: Observation, rollout: Rollout, policy: Policy) -> int:
    """Batches as the running one sees them: those started, and those the instances not
    yet upgraded, not in the running batch and not already on the target still need."""
    seen, upgraded, members = observed.by_index, rollout.upgraded_set, rollout.member_set
    left = sum(
        1
        for i in range(observed.capacity)
        if i not in upgraded and i not in members and not runs_on(seen.get(i), rollout.to_revision)
    )
    size = batch_size(observed.capacity, policy.max_batch_percent)
    return rollout.batch + total_batches(left, size)


def progress(
    observed: Observation, indexes: Sequence[int], version: str, label: str, left: timedelta
) -> str:
    """How far the replacement of `indexes` by `version` is, and the time left until
    their health timeout: "batch 2 of 5: 1 of 2 on 1.0.2, instance 3 still deleting,
    health timeout in 4m10s"."""
    seen = observed.by_index
    there = sum(1 for i in indexes if settled_on(seen.get(i), version))
    deleting = [i for i in indexes if (x := seen.get(i)) is not None and x.exists and x.deleting]
    return (
        f"{label}: {there} of {len(indexes)} on {version}"
        + (f", {instances(deleting)} still deleting" if deleting else "")
        + f", health timeout in {duration(left)}"
    )


def unsettled(observed: Observation, indexes: Sequence[int], version: str) -> str:
    """What keeps members from being settled on `version`: "instance 3 gone"."""
    seen = observed.by_index
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
        f"{instances(found)} {what}"
        for found, what in (
            (gone, "gone"),
            (deleting, "being deleted"),
            (other, "on another revision"),
        )
        if found
    ]
    return ", ".join(parts)


def pending_notes(
    seen: Mapping[int, Instance],
    pending: Sequence[int],
    policy: Policy,
    now: datetime,
    since: datetime,
) -> list[str]:
    """What each Initializing member waits for, members with the same wait together:
    "waiting: instance 3 Initializing, health timeout in 4m10s" (the batch's timeout,
    counted from `since`, when the batch began)."""
    waits: dict[str, list[int]] = {}
    for index in pending:
        instance = seen.get(index)
        if instance is not None and instance.ready and instance.ready_since is not None:
            left = instance.ready_since + policy.min_ready - now
            wait = f"Ready, Healthy after minReady in {duration(left)}"
        else:
            left = since + policy.health_timeout - now
            wait = f"Initializing, health timeout in {duration(left)}"
        waits.setdefault(wait, []).append(index)
    return [f"waiting: {instances(indexes)} {wait}" for wait, indexes in waits.items()]


def action_list(actions: Sequence[Action]) -> str:
    """Actions in short: "delete 2, 3 and create 4 on 1.0.0" ("notify 1 of 1.0.2")."""
    groups: dict[str, list[int]] = {}
    for action in actions:
        if isinstance(action, Delete):
            key = "delete"
        elif isinstance(action, Create):
            key = f"create on {action.revision}"
        else:
            key = f"notify of {action.revision}"
        groups.setdefault(key, []).append(action.index)
    return " and ".join(
        f"{key.split(' ', 1)[0]} {', '.join(map(str, sorted(indexes)))}"
        + (f" {key.split(' ', 1)[1]}" if " " in key else "")
        for key, indexes in groups.items()
    )


def action_notes(
    observed: Observation,
    decided: Plan,
    comes_back: Callable[[int], str | None],
    *,
    in_place: bool = False,
) -> list[str]:
    """One note per group of the plan's actions, in the order they come.

    Deletions for an upgrade or a rollback ("deleting instance 4: it comes back on
    1.0.2 with the same data disks"), of failed instances ("deleting failed instance
    6: it comes back on 1.0.0 ...", the version `comes_back` says), scale-in,
    re-creations of members ("creating instances 0, 1 on 1.0.2, keeping their indexes
    and data disks") and creations of missing instances ("creating missing instance 7
    on 1.0.0 (9 of 10 present)"). With `in_place` (`osImageUpdate:
    InPlaceIfPossible`), an upgrade's or a rollback's members are said to get their
    new OS image in place where their pods allow it, since the apply decides that
    per pod.

    >>> from galleon.core.rollout.model import Delete, Instance, Observation, Plan
    >>> seen = Observation(2, [Instance(0, "1.0.0"), Instance(1, "1.0.0")], "1.0.0", "1.0.2")
    >>> decided = Plan(actions=(Delete(0, "Upgrade to 1.0.2"), Delete(1, "Upgrade to 1.0.2")))
    >>> action_notes(seen, decided, lambda i: None)
    ['deleting instances 0, 1: they come back on 1.0.2 with the same data disks']
    >>> action_notes(seen, decided, lambda i: None, in_place=True)  # doctest: +NORMALIZE_WHITESPACE
    ['updating instances 0, 1 to 1.0.2 in place where their pods allow it (otherwise
      deleted: they come back on 1.0.2 with the same data disks)']
    """
    rollout = decided.rollout
    members = rollout.member_set if rollout is not None and rollout.active else frozenset()
    groups: dict[tuple[str, str], list[int]] = {}
    for action in decided.actions:
        if not isinstance(action, Create | Delete):
            continue  # a notice is said by the planner's own note on the deferral
        if isinstance(action, Delete) and action.reason == FAILED:
            key = ("failed", comes_back(action.index) or "the revision it should run")
        elif isinstance(action, Delete):
            key = ("delete", action.reason)
        else:
            key = ("create" if action.index in members else "missing", action.revision)
        groups.setdefault(key, []).append(action.index)
    notes = []
    for (kind, detail), indexes in groups.items():
        which, one = instances(indexes), len(indexes) == 1
        if kind == "delete" and detail.startswith(UPGRADE_TO):
            version = detail.removeprefix(UPGRADE_TO)
            back = "it comes" if one else "they come"
            if in_place:
                pods = "its pod allows" if one else "their pods allow"
                notes.append(
                    f"updating {which} to {version} in place where {pods} it (otherwise "
                    f"deleted: {back} back on {version} with the same data disks)"
                )
            else:
                notes.append(f"deleting {which}: {back} back on {version} with the same data disks")
        elif kind == "delete" and detail == "ScaleIn":
            notes.append(
                f"scaling in to {observed.capacity}: deleting {which} (highest indexes first)"
            )
        elif kind == "failed":
            back = "it comes" if one else "they come"
            notes.append(
                f"deleting failed {which} (evicted or stopped for good): {back} back on "
                f"{detail} with the same data disks"
            )
        elif kind == "delete":
            notes.append(f"deleting {which} ({detail})")
        elif kind == "create":
            its = "its index and data disks" if one else "their indexes and data disks"
            notes.append(f"creating {which} on {detail}, keeping {its}")
        else:
            notes.append(f"creating missing {which} on {detail} ({presence(observed)})")
    return notes
