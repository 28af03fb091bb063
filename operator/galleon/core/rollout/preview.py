"""What a ScaleSet's upgrade would do next, by running the planner forward.

`preview(observed, recorded, policy, now)` takes the inputs a controller pass gives
`plan` and replays passes over a simulated fleet until the upgrade ends: the
batches it would start (number, instances, earliest start), the running batch, how
it would end and why. `kubectl galleon plan scaleset NAME` prints it.

Rules of this module:
- Every decision is `planner.plan` itself: nothing here knows a batch rule, so a
  preview cannot drift from what the controller does. The simulation only plays
  the cluster: a Delete takes the instance away, a Create brings it back at once on
  the revision asked, Ready from that moment, a Notify (upgrade deferral) is approved
  at once; an instance already being deleted is
  gone at the next decision. Nothing else changes: an instance that is not Ready
  stays so (and its health timeout runs), a paused ScaleSet stays paused, nobody
  cancels.
- Holds (`Hold`: a closed maintenance window, a quarantined version) are the
  observation's, each lifting at its `until`; a caller whose holds change with time
  otherwise (windows that open and close) passes `holds_at`, asked at every
  decision for the holds at that moment.
- Time only moves when a decision changed nothing (no action, the same rollout
  state, no instance being deleted): then to the moment the planner asked to look
  again (`requeue_after`), or, once every wait of the policy is over, to when the
  next hold lifts. So every time shown is the *earliest*: a real pod takes longer
  to become Ready.
- The replay ends when the upgrade ends (Completed, Faulted, Cancelled), when no
  upgrade runs or starts and no hold is due to lift (Idle), when nothing changes
  for longer than any wait of the policy and no hold is due to lift (Held: only a
  user can move it on, e.g. by resuming), or after `max_steps` decisions
  (Unfinished).
- Pure and deterministic: no clock, no I/O, inputs never changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from galleon.core.rollout.model import (
    Action,
    Delete,
    Hold,
    Instance,
    Notify,
    Observation,
    Plan,
    Policy,
    Rollout,
    UpgradeNotice,
    planned_batches,
)
from galleon.core.rollout.planner import plan

Outcome = Literal["Idle", "Completed", "Faulted", "Cancelled", "Held", "Unfinished"]
MAX_STEPS = 1000
"""Decisions replayed at most. A batch takes two to four (delete, create, judge,
wait out the pause); a batch has at least one instance and at least 1% of them."""
IDLE_SECONDS = 30.0
"""How far time moves when the planner names no moment to look again."""


@dataclass(frozen=True)
class PreviewBatch:
    """One batch of the upgrade as the preview sees it."""

    number: int
    instances: tuple[int, ...]
    earliest: datetime
    """When the batch starts at the earliest (for the running batch: when it began)."""


@dataclass(frozen=True)
class Preview:
    """What the upgrade would do from `now` on, if nothing but the planner acted."""

    outcome: Outcome
    batches: tuple[PreviewBatch, ...]
    """The batches that would start after `now`, in order (none when Idle)."""
    running: PreviewBatch | None
    """The batch running at `now` (recorded before), which the upgrade finishes first."""
    total: int
    """Batches of the upgrade in all: as many as the replay took when it completes,
    else as planned (`planned_batches`, "batch 3 of 5"); 0 when Idle."""
    ends: datetime | None
    """When the upgrade would end at the earliest (None: Idle, Held or Unfinished)."""
    first_notes: tuple[str, ...]
    """The planner's notes of the decision at `now`: why an upgrade starts, runs, or
    does not ("no upgrade: 1.0.0 -> 1.0.1 may not start by itself ...")."""
    last_notes: tuple[str, ...]
    """The planner's notes of the last decision replayed: how it ended or what holds it."""
    rollout: Rollout | None
    """The rollout state the replay ended with."""
    steps: int
    """Decisions replayed."""


def preview(
    observed: Observation,
    recorded: Rollout | None,
    policy: Policy,
    now: datetime,
    max_steps: int = MAX_STEPS,
    holds_at: Callable[[datetime], Sequence[Hold]] | None = None,
) -> Preview:
    """Replay the planner from `now` until the upgrade ends (the module's rules).

    Ten healthy instances on 1.0.0, target 1.0.1, batches of 30% and a pause of two
    minutes between them:

    >>> from datetime import datetime, timezone
    >>> t = datetime(2026, 12, 2, 18, 30, tzinfo=timezone.utc)
    >>> fleet = [Instance(i, "1.0.0", ready=True, created=t) for i in range(10)]
    >>> policy = Policy(max_batch_percent=30, max_unhealthy_percent=30,
    ...                 pause=timedelta(minutes=2))
    >>> seen = preview(Observation(10, fleet, "1.0.0", "1.0.1"), None, policy, t)
    >>> for b in seen.batches:
    ...     print(f"batch {b.number} of {seen.total}: {b.instances} at {b.earliest:%H:%M}")
    batch 1 of 4: (0, 1, 2) at 18:30
    batch 2 of 4: (3, 4, 5) at 18:32
    batch 3 of 4: (6, 7, 8) at 18:34
    batch 4 of 4: (9,) at 18:36
    >>> seen.outcome, f"{seen.ends:%H:%M}"
    ('Completed', '18:36')

    An upgrade that may not start by itself (mode Manual, automatic upgrades off)
    starts nothing, and the planner says why:

    >>> manual = preview(Observation(10, fleet, "1.0.0", "1.0.1", may_start=False), None,
    ...                  policy, t)
    >>> manual.outcome, manual.batches
    ('Idle', ())
    >>> print(*manual.first_notes)
    no upgrade: 1.0.0 -> 1.0.1 may not start by itself (waits for a start request)

    A hold that lifts at a known time (a maintenance window opening at 19:00) moves
    the first batch there:

    >>> window = Hold("OutsideMaintenanceWindow", "opens 19:00", t.replace(hour=19, minute=0))
    >>> held = preview(Observation(10, fleet, "1.0.0", "1.0.1", holds=(window,)), None,
    ...                policy, t)
    >>> [f"{b.earliest:%H:%M}" for b in held.batches]
    ['19:00', '19:02', '19:04', '19:06']
    """
    fleet: dict[int, Instance] = {i.index: i for i in observed.instances}
    rollout, t = recorded, now
    running = _running(recorded)
    active = recorded is not None and recorded.active
    batches: list[PreviewBatch] = []
    first: Plan | None = None
    decided: Plan | None = None
    quiet_since = now
    horizon = policy.pause + policy.health_timeout + policy.min_ready
    outcome: Outcome = "Unfinished"
    steps = 0
    while steps < max_steps:
        steps += 1
        holds = _holds(observed, holds_at, t)
        seen = replace(observed, instances=tuple(fleet.values()), holds=holds)
        decided = plan(seen, rollout, policy, t)
        first = first or decided
        new = decided.rollout
        if _starts_batch(rollout, new):
            assert new is not None  # a batch starts only in a rollout
            batches.append(PreviewBatch(new.batch, new.members, t))
        # A deletion under way ends before the next decision: the watch shows it at once.
        going = any(i.deleting for i in fleet.values())
        changed = bool(decided.actions) or new != rollout or going
        # An upgrade may start and end in one decision (Faulted before batch 1).
        began = new is not None and (rollout is None or new.started != rollout.started)
        active = active or began or (new is not None and new.active)
        fleet = _applied(fleet, decided.actions, t)
        rollout = new
        if active and (new is None or not new.active):
            outcome = _ended(new)
            break
        if changed:
            quiet_since = t
            continue
        lifts = [h.until for h in holds if h.until is not None and h.until > t]
        if not active or t - quiet_since > horizon:
            # Why: an upgrade starts on what is observed, never on time passing, and once
            # every wait of the planner (pause, health timeout, minReady) is over nothing
            # moves by itself either: only a hold lifting, or a user (resume, start).
            if not lifts:
                outcome = "Idle" if not active else "Held"
                break
            t = min(lifts)
            continue
        t += timedelta(seconds=decided.requeue_after if decided.requeue_after > 0 else 1.0)
    assert first is not None and decided is not None  # max_steps >= 1
    return Preview(
        outcome=outcome,
        batches=tuple(batches),
        running=running,
        total=_total(outcome, rollout, observed.capacity, policy),
        ends=t if outcome in ("Completed", "Faulted", "Cancelled") else None,
        first_notes=first.notes,
        last_notes=decided.notes,
        rollout=rollout,
        steps=steps,
    )


def _holds(
    observed: Observation, holds_at: Callable[[datetime], Sequence[Hold]] | None, at: datetime
) -> tuple[Hold, ...]:
    """The holds at `at`: `holds_at`'s, else the observation's that have not lifted."""
    if holds_at is not None:
        return tuple(holds_at(at))
    return tuple(h for h in observed.holds if h.until is None or h.until > at)


def _running(recorded: Rollout | None) -> PreviewBatch | None:
    """The batch the recorded rollout is replacing or checking, if any."""
    if (
        recorded is None
        or recorded.code != "RollingForward"
        or recorded.phase not in ("Replacing", "Waiting")
        or not recorded.members
    ):
        return None
    return PreviewBatch(recorded.batch, recorded.members, recorded.batch_start)


def _starts_batch(before: Rollout | None, after: Rollout | None) -> bool:
    """The decision started a batch: a rollout rolling forward whose batch number is
    new (a new rollout's batch 1, or the next batch of the same one)."""
    if after is None or after.code != "RollingForward" or after.batch < 1:
        return False
    if before is None or before.started != after.started:
        return True
    return after.batch > before.batch


def _applied(
    fleet: Mapping[int, Instance], actions: tuple[Action, ...], at: datetime
) -> dict[int, Instance]:
    """The simulated fleet after `actions`: deletions done at once (so is any deletion
    that was under way), creations Ready at once on the revision asked."""
    after = {index: i for index, i in fleet.items() if not i.deleting}
    for action in actions:
        if isinstance(action, Delete):
            after.pop(action.index, None)
        elif isinstance(action, Notify):
            # Upgrade deferral: the instance approves at once (the earliest it can go).
            notice = UpgradeNotice(action.revision, action.noticed, action.deadline)
            if action.index in after:
                after[action.index] = replace(
                    after[action.index], upgrade_notice=notice, approved=True
                )
        else:
            after[action.index] = Instance(
                action.index, action.revision, ready=True, ready_since=at, created=at
            )
    return after


def _ended(rollout: Rollout | None) -> Outcome:
    """How an upgrade that stopped being active ended."""
    code = rollout.code if rollout is not None else None
    if code == "Completed":
        return "Completed"
    if code == "Cancelled":
        return "Cancelled"
    return "Faulted" if code == "Faulted" else "Idle"


def _total(outcome: Outcome, rollout: Rollout | None, capacity: int, policy: Policy) -> int:
    if rollout is None or outcome == "Idle":
        return 0
    if outcome == "Completed":
        return rollout.batch
    return planned_batches(rollout, capacity, policy)
