"""Whole rollouts replayed over an in-memory fleet, checked after every step.

The Cluster API way (docs/style.md, practice 7): a simulated fleet plays the
cluster, a driver loops observe -> plan -> apply -> advance the simulated clock to
the planner's requeue or the next pod event, whichever comes first (as the
watch does, a pod the controller deletes or creates wakes it at once), and after
every step the invariants of a rolling upgrade are checked:

- never more instances unavailable *because of the upgrade* than one batch: an
  instance counts from the moment the planner deletes or creates it for the
  upgrade until it is Ready, has crashed, has used up its health timeout or its
  batch was judged (from then on it is an unhealthy instance, which the unhealthy
  limits govern);
- never more instances not running (being deleted, missing, or in the running
  batch) than one batch plus those already unhealthy before the step: the planner
  takes down no healthy instance outside its batch (replacing a failed one is
  taking down an unhealthy one);
- no instance is upgraded twice in one rollout, and an instance recorded as
  upgraded is never put in a later batch or deleted for the upgrade again (only
  a rollback takes it back);
- the planner is deterministic: the same observation, in any order of its
  instances, gives the same plan, notes included; and every plan has notes;
- data-disk identity: instances are only created at free indexes inside
  0..capacity-1, on the disk of that index, so the index set stays the same;
- when the rollout faults with rollback on, the rolled-back instances end on the
  source revision;
- while the ScaleSet is paused or held (a hold: a closed maintenance window), no
  batch and no upgrade starts, and the planner looks again no later than the hold
  lifts.

Seeds (hypothesis) vary the pods' start and deletion delays and the order in
which the planner sees its instances; a table of named scenarios covers a healthy
rollout, a bad version that faults and rolls back, pods that are never created
(refused), a few instances failing, evictions inside and outside the batch,
pauses, a maintenance window closing mid-rollout, a cancel and a scale-in
mid-rollout.

Representative seeded runs are kept as narrated golden logs in
tests/unit/golden/<scenario>.log, one line per step. After an intended change of
the planner or of its notes, regenerate them and read their diff like code:

    GALLEON_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_rollout_simulation.py
"""

from __future__ import annotations

import difflib
import os
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from galleon.core.rollout import (
    BEFORE,
    FAILED,
    UPGRADED,
    Code,
    Create,
    Delete,
    Hold,
    Instance,
    Observation,
    Phase,
    Plan,
    Policy,
    Rollout,
    batch_size,
    health,
    plan,
    planned_batches,
)

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
SOURCE, TARGET = "1.0.0-abc", "1.0.2-abc"
GOLDEN = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("GALLEON_UPDATE_GOLDEN") == "1"


# ---------------------------------------------------------------------------
# Scenarios: a fleet, a policy, how pods behave, what users do meanwhile.


@dataclass(frozen=True)
class Change:
    """What a user (or the cluster) does once batch `at_batch` has started, and the
    rollout is in `phase` if one is given (at most once per run)."""

    at_batch: int
    phase: Phase | None = None
    pause_for: timedelta | None = None
    """Set `spec.paused` for this long, then unset it."""
    hold_for: timedelta | None = None
    """A hold (the maintenance window closes) for this long, then it lifts."""
    cancel: bool = False
    """Annotate the ScaleSet to cancel the upgrade (persisted as cancel_requested)."""
    capacity: int | None = None
    """Change `spec.capacity` to this."""
    evict: int | None = None
    """The kubelet evicts this instance's pod: it fails (phase Failed) and stays."""

    def describe(self) -> str:
        if self.evict is not None:
            return f"the kubelet evicts instance {self.evict} (its pod fails)"
        if self.pause_for is not None:
            return f"user pauses the ScaleSet for {_clock(self.pause_for)}"
        if self.hold_for is not None:
            return f"the maintenance window closes for {_clock(self.hold_for)}"
        if self.cancel:
            return "user asks to cancel the upgrade"
        return f"user sets capacity to {self.capacity}"


@dataclass(frozen=True)
class Expect:
    """How a scenario ends, whatever the seed."""

    code: Code
    error_code: str = ""
    on_target: tuple[int, ...] = ()
    """The indexes that end on the target revision; every other index ends on the source."""
    capacity: int = 10
    failed: tuple[int, ...] = ()
    rolled_back: tuple[int, ...] = ()


@dataclass(frozen=True)
class Scenario:
    name: str
    expect: Expect | None
    capacity: int = 10
    policy: Policy = field(default_factory=Policy)
    ready_after: tuple[int, int] = (20, 90)
    """Seconds from a pod's creation until it is Ready (drawn per pod)."""
    deleted_after: tuple[int, int] = (0, 8)
    """Seconds from a Delete until the pod is gone; meanwhile it is deleting, not Ready."""
    hangs: bool = False
    """Pods of the target revision never become Ready (a bad version)."""
    refused: bool = False
    """Pods of the target revision are never created (the apiserver refuses them, or
    the region has no copy of the image): the planner's creates do nothing."""
    crashes: frozenset[int] = frozenset()
    """Indexes whose first pod on the target crashes (failed) when it would have become
    Ready; a pod re-created in its place comes up."""
    broken: frozenset[int] = frozenset()
    """Indexes already failed (evicted) on the source when the run starts."""
    stuck: frozenset[int] = frozenset()
    """Indexes running on the source but never Ready (unhealthy) when the run starts."""
    changes: tuple[Change, ...] = ()


ALL = tuple(range(10))
SCENARIOS = [
    Scenario("healthy-10-at-20pct", Expect("Completed", on_target=ALL)),
    Scenario(
        "bad-version-faults-and-rolls-back",
        Expect("Faulted", UPGRADED, failed=(0, 1), rolled_back=(0, 1)),
        hangs=True,
    ),
    Scenario(
        "bad-version-without-rollback",
        Expect("Faulted", UPGRADED, on_target=(0, 1), failed=(0, 1)),
        policy=Policy(rollback=False),
        hangs=True,
    ),
    Scenario(
        "a-few-instances-crash-within-budget",
        Expect("Completed", on_target=ALL, failed=(3, 8)),
        policy=Policy(max_unhealthy_upgraded_percent=30),
        crashes=frozenset({3, 8}),
    ),
    Scenario(
        "crashes-over-budget-roll-back",
        Expect(
            "Faulted", UPGRADED, on_target=(0, 1, 2, 4, 5), failed=(3, 6, 7), rolled_back=(3, 6, 7)
        ),
        policy=Policy(max_unhealthy_upgraded_percent=30),
        crashes=frozenset({3, 6, 7}),
    ),
    Scenario(
        "target-pods-never-created-fault-and-roll-back",
        Expect("Faulted", UPGRADED, failed=(0, 1), rolled_back=(0, 1)),
        policy=Policy(health_timeout=timedelta(seconds=30)),  # a short log
        ready_after=(5, 20),
        refused=True,
    ),
    Scenario(
        "unhealthy-before-a-batch-faults",
        Expect("Faulted", BEFORE),
        stuck=frozenset({7, 8, 9}),
    ),
    Scenario(
        "failed-before-the-upgrade-are-replaced-first",
        Expect("Completed", on_target=ALL),
        broken=frozenset({7, 8, 9}),
    ),
    Scenario(
        "unhealthy-first",
        Expect("Completed", on_target=ALL),
        policy=Policy(prioritize_unhealthy=True),
        stuck=frozenset({6}),
    ),
    Scenario(
        "evictions-replaced-and-counted",
        Expect("Completed", on_target=ALL, failed=(3,)),
        policy=Policy(max_unhealthy_upgraded_percent=30),
        changes=(Change(1, evict=9), Change(2, phase="Waiting", evict=3)),
    ),
    Scenario(
        "pause-between-batches-and-user-pause",
        Expect("Completed", on_target=ALL),
        policy=Policy(pause=timedelta(minutes=1), min_ready=timedelta(seconds=15)),
        changes=(Change(3, pause_for=timedelta(minutes=4)),),
    ),
    Scenario(
        "a-maintenance-window-closes-during-a-batch",
        Expect("Completed", on_target=ALL),
        changes=(Change(2, phase="Replacing", hold_for=timedelta(minutes=7)),),
    ),
    Scenario(
        "cancel-mid-rollout",
        Expect("Cancelled", on_target=(0, 1, 2, 3)),
        policy=Policy(pause=timedelta(seconds=30)),
        changes=(Change(2, cancel=True),),
    ),
    Scenario(
        "pods-ready-at-once",
        Expect("Completed", on_target=ALL),
        ready_after=(0, 1),
        deleted_after=(0, 0),
    ),
    Scenario(
        "scale-in-mid-rollout",
        Expect("Completed", on_target=tuple(range(8)), capacity=8),
        changes=(Change(2, capacity=8),),
    ),
]
GOLDEN_RUNS = [  # (scenario, seed): the narrated logs under tests/unit/golden/
    ("healthy-10-at-20pct", 1),
    ("bad-version-faults-and-rolls-back", 2),
    ("a-few-instances-crash-within-budget", 3),
    ("pause-between-batches-and-user-pause", 4),
    ("cancel-mid-rollout", 5),
    ("target-pods-never-created-fault-and-roll-back", 6),
    ("evictions-replaced-and-counted", 7),
    ("a-maintenance-window-closes-during-a-batch", 8),
]


# ---------------------------------------------------------------------------
# The simulated fleet.


@dataclass
class Pod:
    revision: str
    disk: str
    created: datetime
    ready_at: datetime | None
    """When it becomes Ready; None: never."""
    fails_at: datetime | None = None
    """When it crashes (failed, for good); None: never."""
    gone_at: datetime | None = None
    """Set by a Delete: when the pod is gone. Until then it is deleting, not Ready."""


class World:
    """The cluster as the planner cannot see it: pods with their futures, disks, users."""

    def __init__(self, scenario: Scenario, seed: int) -> None:
        self.scenario = scenario
        self.delays = Random(seed)  # pod start and deletion delays
        self.order = Random(seed ^ 0x5EED)  # the order of instances in an observation
        self.now = T0
        self.capacity = scenario.capacity
        self.target = SOURCE  # the target revision is published after the first look
        self.paused_until: datetime | None = None
        self.held_until: datetime | None = None
        self.disks = {i: f"disk-{i}" for i in range(scenario.capacity)}
        self.pods: dict[int, Pod] = {}
        for index in range(scenario.capacity):
            broken = index in scenario.broken
            long_ago = T0 - timedelta(hours=1)
            self.pods[index] = Pod(
                SOURCE,
                self.disks[index],
                long_ago,
                ready_at=None if broken or index in scenario.stuck else long_ago,
                fails_at=long_ago if broken else None,
            )
        self.revisions = {index: SOURCE for index in self.pods}  # of each index's last pod
        self.crashed: set[int] = set()  # indexes whose one crash happened
        self.repairing: set[int] = set()  # failed pods the planner deleted to re-create
        self.echo = False  # the watch shows a pod the controller just deleted or created
        # What the invariants track, per rollout (reset when a new one starts).
        self.upgrades: Counter[int] = Counter()
        self.forward: set[int] = set()  # touched by the upgrade, not yet judged
        self.back: set[int] = set()  # touched by a rollback, not yet judged

    # -- what the controller would see

    def observe(self) -> Observation:
        for index in [i for i, p in self.pods.items() if p.gone_at and p.gone_at <= self.now]:
            del self.pods[index]
        instances = [self._instance(index, pod) for index, pod in sorted(self.pods.items())]
        self.order.shuffle(instances)
        live = Counter(i.revision for i in instances if not i.deleting)
        outdated = Counter(
            i.revision for i in instances if not i.deleting and i.revision != self.target
        )
        source = _majority(outdated) or _majority(live)
        paused = self.paused_until is not None and self.now < self.paused_until
        holds: tuple[Hold, ...] = ()
        if self.held_until is not None and self.now < self.held_until:
            opens = f"the window opens at {_offset(self.held_until)}"
            holds = (Hold("OutsideMaintenanceWindow", opens, self.held_until),)
        return Observation(
            self.capacity, tuple(instances), source, self.target, paused=paused, holds=holds
        )

    def _instance(self, index: int, pod: Pod) -> Instance:
        deleting = pod.gone_at is not None
        failed = pod.fails_at is not None and self.now >= pod.fails_at
        ready = (
            not deleting and not failed and pod.ready_at is not None and self.now >= pod.ready_at
        )
        return Instance(
            index,
            pod.revision,
            ready=ready,
            ready_since=pod.ready_at if ready else None,
            created=pod.created,
            deleting=deleting,
            failed=failed,
        )

    # -- what the controller does

    def apply(self, actions: tuple[Create | Delete, ...], batch: frozenset[int]) -> None:
        """Send the plan's actions; `batch`: the members of the running batch or rollback."""
        for action in actions:
            index = action.index
            self.echo = self.echo or isinstance(action, Delete)
            if isinstance(action, Delete):
                pod = self.pods.get(index)
                assert pod is not None and pod.gone_at is None, f"{action}: no such live pod"
                if action.reason == FAILED:
                    assert self._instance(index, pod).failed, f"{action}: the pod has not failed"
                    assert index not in batch, f"{action}: a member is judged, not repaired"
                    self.repairing.add(index)
                    self.forward.discard(index)  # failed: judged; its repair is no upgrade
                    self.back.discard(index)
                delay = self.delays.randint(*self.scenario.deleted_after)
                if delay == 0:
                    del self.pods[index]
                else:
                    pod.gone_at = self.now + timedelta(seconds=delay)
                if action.reason == f"Upgrade to {TARGET}":
                    self._touched(index, forward=True)
                elif action.reason == f"Upgrade to {SOURCE}":
                    self._touched(index, forward=False)
                continue
            assert 0 <= index < self.capacity, f"{action} outside 0..{self.capacity - 1}"
            assert index not in self.pods, f"{action} over an existing pod"
            if action.revision == TARGET and self.scenario.refused:
                continue  # refused: no pod, the planner sees it missing (no watch event)
            self.echo = True
            if action.revision == TARGET and self.revisions.get(index) != TARGET:
                self.upgrades[index] += 1  # re-creating a failed pod on it is no upgrade
            self.revisions[index] = action.revision
            repair = index in self.repairing and index not in batch
            self.repairing.discard(index)
            if repair:
                pass  # a failed pod's replacement: not the upgrade's doing
            elif action.revision == TARGET:
                self._touched(index, forward=True)
            elif index in self.back:  # a rollback's re-creation (a scale-out's is neither)
                self._touched(index, forward=False)
            start = self.now + timedelta(seconds=self.delays.randint(*self.scenario.ready_after))
            bad = action.revision == TARGET and self.scenario.hangs
            crash = (
                action.revision == TARGET
                and index in self.scenario.crashes
                and index not in self.crashed
            )
            if crash:
                self.crashed.add(index)
            self.pods[index] = Pod(
                action.revision,
                self.disks.setdefault(index, f"disk-{index}"),  # a new disk only on scale-out
                self.now,
                ready_at=None if bad or crash else start,
                fails_at=start if crash else None,
            )

    def evict(self, index: int) -> None:
        """The pod at `index` fails now (if it is there, not going, not failed already)."""
        pod = self.pods.get(index)
        if pod is None or pod.gone_at is not None:
            return
        if pod.fails_at is None or pod.fails_at > self.now:
            pod.fails_at = self.now

    def _touched(self, index: int, forward: bool) -> None:
        if forward:
            self.forward.add(index)
        else:
            self.forward.discard(index)
            self.back.add(index)

    # -- time

    def next_event(self) -> datetime | None:
        """When the controller is woken next without asking: at once when the watch shows
        a pod it deleted or created, else when a pod changes or a pause or hold ends."""
        if self.echo:
            return self.now
        moments = [m for m in (self.paused_until, self.held_until) if m is not None]
        for pod in self.pods.values():
            moments += [m for m in (pod.ready_at, pod.fails_at, pod.gone_at) if m is not None]
        later = [m for m in moments if m > self.now]
        return min(later) if later else None

    def in_flight(self, indexes: set[int], policy: Policy) -> set[int]:
        """Of `indexes`, those still unavailable because they were just replaced."""
        flying = set()
        for index in indexes:
            pod = self.pods.get(index)
            if index >= self.capacity:
                continue
            if pod is None or pod.gone_at is not None:
                flying.add(index)
                continue
            instance = self._instance(index, pod)
            timed_out = self.now - pod.created >= policy.health_timeout
            if not (instance.ready or instance.failed or timed_out):
                flying.add(index)
        return flying


def _majority(counts: Counter[str | None]) -> str | None:
    ranked = sorted((c, r) for r, c in counts.items() if r)
    return ranked[-1][1] if ranked else None


# ---------------------------------------------------------------------------
# The driver and the invariants.


@dataclass
class Run:
    scenario: Scenario
    seed: int
    world: World
    rollout: Rollout | None
    log: list[str]


def replay(scenario: Scenario, seed: int, max_steps: int = 1500) -> Run:
    """Observe, plan, check, apply, advance, until the fleet is quiet and no rollout runs."""
    world = World(scenario, seed)
    policy = scenario.policy
    rollout: Rollout | None = None
    log = _header(scenario, seed)
    pending = list(scenario.changes)
    limit = 0
    for step in range(max_steps):
        for change in [c for c in pending if _due(c, rollout)]:
            pending.remove(change)
            rollout = _user_change(change, world, rollout)
            log.append(f"{'':>4} {_offset(world.now):>7}  ~ {change.describe()}")
        observed = world.observe()
        decided = plan(observed, rollout, policy, world.now)
        _check_deterministic(observed, rollout, policy, world.now, decided)
        log.append(_narrate(step, world, observed, decided))
        if decided.rollout is not None and (
            rollout is None or decided.rollout.started != rollout.started
        ):  # a new rollout: its own upgrade counts
            world.upgrades.clear()
            limit = 0
        limit = max(limit, batch_size(world.capacity, policy.max_batch_percent))
        after = decided.rollout
        batch = frozenset(after.members) if after is not None and after.active else frozenset()
        world.apply(decided.actions, batch)
        _check_step(world, rollout, decided, limit)
        _check_held(observed, rollout, decided, world.now, policy)
        _check_availability(world, observed, decided, limit)
        previous, rollout = rollout, decided.rollout
        if step == 0:  # the first look was at the fleet before its new target existed
            world.target = TARGET
            log.append(f"{'':>4} {_offset(world.now):>7}  ~ target revision is now {TARGET}")
            continue
        idle = (rollout is None or not rollout.active) and not decided.actions
        # Nothing to do and nothing left to happen (no rollout at all: the fleet came to
        # the target another way, e.g. its only instance failed and was re-created).
        if idle and (previous is None or not previous.active) and world.next_event() is None:
            break
        wake = world.now + timedelta(seconds=decided.requeue_after)
        event = world.next_event()
        world.now = min(wake, event) if event is not None else wake
        world.echo = False
    else:
        pytest.fail(f"{scenario.name} seed {seed}: not settled after {max_steps} steps")
    _check_end(world, rollout, policy)
    return Run(scenario, seed, world, rollout, log)


def _due(change: Change, rollout: Rollout | None) -> bool:
    return (
        rollout is not None
        and rollout.batch >= change.at_batch
        and (change.phase is None or rollout.phase == change.phase)
    )


def _user_change(change: Change, world: World, rollout: Rollout | None) -> Rollout | None:
    if change.evict is not None:
        world.evict(change.evict)
    if change.pause_for is not None:
        world.paused_until = world.now + change.pause_for
    if change.hold_for is not None:
        world.held_until = world.now + change.hold_for
    if change.capacity is not None:
        world.capacity = change.capacity
    if change.cancel and rollout is not None and rollout.code == "RollingForward":
        return replace(rollout, cancel_requested=True)  # as the controller records it
    return rollout


def _check_deterministic(
    observed: Observation, rollout: Rollout | None, policy: Policy, now: datetime, decided: Plan
) -> None:
    again = plan(observed, rollout, policy, now)
    reordered = replace(observed, instances=tuple(reversed(observed.instances)))
    assert again == decided, "the same inputs gave another plan"
    assert plan(reordered, rollout, policy, now) == decided, "the order of instances mattered"
    assert decided.notes, "a plan without notes"


def _check_step(world: World, before: Rollout | None, decided: Plan, limit: int) -> None:
    policy = world.scenario.policy
    after = decided.rollout
    world.forward = world.in_flight(world.forward, policy)
    world.back = world.in_flight(world.back, policy)
    if after is not None:  # judged at its batch's health timeout: an unhealthy instance now
        world.forward -= set(after.upgraded) - set(after.members)
        world.back -= set(after.rolled_back) - set(after.members)
    assert len(world.forward) <= limit, (
        f"{sorted(world.forward)} unavailable because of the upgrade, batch size {limit}"
    )
    if after is not None and after.phase == "RollingBack":
        assert world.back <= set(after.members), f"rolling back {world.back} beyond the members"
    twice = sorted(i for i, n in world.upgrades.items() if n > 1)
    assert not twice, f"instances {twice} upgraded twice in one rollout"
    if before is not None and after is not None and before.started == after.started:
        done = set(before.upgraded)
        again = [
            a.index
            for a in decided.actions
            if isinstance(a, Delete) and a.reason == f"Upgrade to {after.to_revision}"
        ]
        if after.phase != "RollingBack":
            again += list(after.members)
        replaced = sorted(done & set(again))
        assert not replaced, f"instances {replaced}, recorded upgraded, replaced again"
        assert set(before.upgraded) <= set(after.upgraded), "an upgraded instance was forgotten"
        assert after.batch - before.batch in (0, 1), "more than one batch in one step"
    for index, pod in world.pods.items():
        assert pod.disk == world.disks[index] == f"disk-{index}", f"instance {index} lost its disk"


def _check_held(
    observed: Observation, before: Rollout | None, decided: Plan, now: datetime, policy: Policy
) -> None:
    """Paused or held: no batch and no upgrade starts, and while the hold is what the
    plan waits for (between batches, or before a start), the planner looks again no
    later than the earliest hold lifts."""
    if not observed.paused and not observed.holds:
        return
    after = decided.rollout
    if after is not None and (before is None or after.started != before.started):
        pytest.fail(f"an upgrade started while held: {observed.holds or 'paused'}")
    if after is not None and before is not None and after.batch > before.batch:
        pytest.fail(f"batch {after.batch} started while held: {observed.holds or 'paused'}")
    waits_for_the_hold = (
        after is None
        or (not after.active and after == before)
        or (
            after.active
            and after.phase == "Pausing"
            and now - (after.phase_since or now) >= policy.pause
        )
    )
    if not waits_for_the_hold:
        # A batch runs, the pause between batches does, or the upgrade just ended: the
        # hold is not what the plan waits for.
        return
    for hold in observed.holds:
        if hold.until is not None:
            wait = max(1.0, (hold.until - now).total_seconds())
            assert decided.requeue_after <= wait, f"looks again after {hold} lifted"


def _check_availability(world: World, observed: Observation, decided: Plan, limit: int) -> None:
    """Not running after the step (deleting, missing, in the running batch) at most the
    batch size plus the instances unhealthy before it (outside the upgrade's batch)."""
    policy, now = world.scenario.policy, world.now
    after = decided.rollout
    forward = (
        set(after.members)
        if after is not None and after.active and after.phase in ("Replacing", "Waiting")
        else set()
    )
    in_batch = set(after.members) if after is not None and after.active else set()
    seen = observed.by_index
    unhealthy = {
        i
        for i in range(observed.capacity)
        if (x := seen.get(i)) is None or health(x, policy, now) == "Unhealthy"
    } | set(after.failed if after is not None else ())
    down = {
        i
        for i in range(world.capacity)
        if (pod := world.pods.get(i)) is None or pod.gone_at is not None or i in in_batch
    }
    assert len(down) <= limit + len(unhealthy - forward), (
        f"{sorted(down)} not running, batch size {limit}, unhealthy before "
        f"{sorted(unhealthy - forward)}"
    )


def _check_end(world: World, rollout: Rollout | None, policy: Policy) -> None:
    assert set(world.pods) == set(range(world.capacity)), "the index set changed"
    if rollout is None:
        return
    if rollout.code == "Faulted" and rollout.error_code == UPGRADED and policy.rollback:
        assert rollout.rolled_back == rollout.failed
        for index in rollout.rolled_back:
            assert world.pods[index].revision == SOURCE, f"instance {index} not rolled back"


# ---------------------------------------------------------------------------
# The narration: one line per step.


def _header(scenario: Scenario, seed: int) -> list[str]:
    p = scenario.policy
    pods = (
        f"Ready {scenario.ready_after[0]}-{scenario.ready_after[1]}s after creation, "
        f"gone {scenario.deleted_after[0]}-{scenario.deleted_after[1]}s after a Delete"
    )
    if scenario.hangs:
        pods += f"; {TARGET} never Ready"
    if scenario.refused:
        pods += f"; pods of {TARGET} refused (never created)"
    if scenario.crashes:
        pods += f"; on {TARGET}, {_list(scenario.crashes)} crash once instead of getting Ready"
    if scenario.broken:
        pods += f"; {_list(scenario.broken)} failed from the start"
    if scenario.stuck:
        pods += f"; {_list(scenario.stuck)} never Ready from the start"
    return [
        f"# {scenario.name}, seed {seed}: {scenario.capacity} instances, {SOURCE} -> {TARGET}",
        f"# policy: batch {p.max_batch_percent}%, at most {p.max_unhealthy_percent}% unhealthy "
        f"before a batch and {p.max_unhealthy_upgraded_percent}% of the upgraded, pause "
        f"{_clock(p.pause)}, health timeout {_clock(p.health_timeout)}, minReady "
        f"{_clock(p.min_ready)}, rollback {'on' if p.rollback else 'off'}"
        + (", unhealthy first" if p.prioritize_unhealthy else ""),
        f"# pods: {pods}",
        "# columns: step, time, fleet by index (O/o: source Ready/not, N/n: target Ready/not,",
        "#   x: deleting, !: failed, .: missing), rollout (phase batch/of), actions"
        " (-i delete, +i create), the planner's notes",
    ]


def _narrate(step: int, world: World, observed: Observation, decided: Plan) -> str:
    seen = {i.index: i for i in observed.instances}
    width = max([observed.capacity, *(i + 1 for i in seen)])
    fleet = "".join(_letter(seen.get(index)) for index in range(width))
    rollout = decided.rollout
    if rollout is None:
        state = "-"
    else:
        of = planned_batches(rollout, observed.capacity, world.scenario.policy)
        name = rollout.phase if rollout.active else rollout.code
        state = f"{name} {rollout.batch}/{of}"
    actions = (
        " ".join(f"{'-' if isinstance(a, Delete) else '+'}{a.index}" for a in decided.actions)
        or "."
    )
    return f"{step:>4} {_offset(world.now):>7}  {fleet}  {state:<14} {actions:<8} " + "; ".join(
        decided.notes
    )


def _letter(instance: Instance | None) -> str:
    if instance is None or not instance.exists:
        return "."
    if instance.deleting:
        return "x"
    if instance.failed:
        return "!"
    letter = {SOURCE: "o", TARGET: "n"}.get(instance.revision or "", "?")
    return letter.upper() if instance.ready else letter


def _offset(moment: datetime) -> str:
    seconds = round((moment - T0).total_seconds())
    return f"+{seconds // 60:02d}:{seconds % 60:02d}"


def _clock(span: timedelta) -> str:
    seconds = round(span.total_seconds())
    minutes, seconds = divmod(seconds, 60)
    return (f"{minutes}m" if minutes else "") + (f"{seconds}s" if seconds or not minutes else "")


def _list(indexes: frozenset[int]) -> str:
    return ("instance " if len(indexes) == 1 else "instances ") + ", ".join(
        map(str, sorted(indexes))
    )


# ---------------------------------------------------------------------------
# The tests.

BY_NAME = {s.name: s for s in SCENARIOS}


@pytest.mark.parametrize("scenario", [pytest.param(s, id=s.name) for s in SCENARIOS])
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_every_step_keeps_the_invariants_and_the_run_ends_as_expected(
    scenario: Scenario, seed: int
) -> None:
    run = replay(scenario, seed)
    expect = scenario.expect
    assert expect is not None
    final = run.rollout
    assert final is not None and not final.active
    assert (final.code, final.error_code) == (expect.code, expect.error_code)
    assert run.world.capacity == expect.capacity
    assert final.failed == expect.failed
    assert final.rolled_back == expect.rolled_back
    ends = {i: pod.revision for i, pod in sorted(run.world.pods.items())}
    assert ends == {i: TARGET if i in expect.on_target else SOURCE for i in range(expect.capacity)}
    world = run.world
    down = [i for i, pod in sorted(world.pods.items()) if world._instance(i, pod).failed]
    assert not down, f"instances {down} end failed: a failed pod is replaced"


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(1, 16),
    batch_percent=st.integers(5, 100),
    unhealthy_percent=st.integers(5, 100),
    upgraded_percent=st.integers(0, 100),
    hangs=st.booleans(),
    crashes=st.frozensets(st.integers(0, 15), max_size=4),
    broken=st.frozensets(st.integers(0, 15), max_size=2),
    stuck=st.frozensets(st.integers(0, 15), max_size=2),
    rollback=st.booleans(),
    pause=st.sampled_from([0, 30, 90]),
    ready_after=st.tuples(st.integers(0, 60), st.integers(0, 400)).map(sorted).map(tuple),
    change=st.sampled_from(
        [
            "none",
            "cancel",
            "pause",
            "hold",
            "scale-out",
            "scale-in",
            "evict",
            "evict-while-waiting",
        ]
    ),
    change_at=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_invariants_hold_for_any_fleet_and_policy(
    capacity: int,
    batch_percent: int,
    unhealthy_percent: int,
    upgraded_percent: int,
    hangs: bool,
    crashes: frozenset[int],
    broken: frozenset[int],
    stuck: frozenset[int],
    rollback: bool,
    pause: int,
    ready_after: tuple[int, int],
    change: str,
    change_at: int,
    seed: int,
) -> None:
    policy = Policy(
        max_batch_percent=min(batch_percent, unhealthy_percent),  # the CRD refuses more
        max_unhealthy_percent=unhealthy_percent,
        max_unhealthy_upgraded_percent=upgraded_percent,
        pause=timedelta(seconds=pause),
        rollback=rollback,
    )
    scenario = Scenario(
        "generated",
        None,
        capacity=capacity,
        policy=policy,
        ready_after=ready_after,
        hangs=hangs,
        crashes=frozenset(i for i in crashes if i < capacity),
        broken=frozenset(i for i in broken if i < capacity),
        stuck=frozenset(i for i in stuck if i < capacity),
        changes={
            "none": (),
            "cancel": (Change(change_at, cancel=True),),
            "pause": (Change(change_at, pause_for=timedelta(minutes=2)),),
            "hold": (Change(change_at, hold_for=timedelta(minutes=3)),),
            "scale-out": (Change(change_at, capacity=capacity + change_at),),
            "scale-in": (Change(change_at, capacity=max(0, capacity - change_at)),),
            "evict": (Change(change_at, evict=seed % capacity),),
            "evict-while-waiting": (Change(change_at, phase="Waiting", evict=seed % capacity),),
        }[change],
    )
    run = replay(scenario, seed)
    if run.rollout is None:  # no upgrade was needed in the end
        assert {pod.revision for pod in run.world.pods.values()} <= {TARGET}
    else:
        assert not run.rollout.active


def _steady_fleet(
    size: int, failed: tuple[int, ...] = (), stuck: tuple[int, ...] = ()
) -> tuple[Instance, ...]:
    """`size` instances on the source for an hour, Ready but those `failed` (evicted)
    and those `stuck` (running, never Ready)."""
    hour_ago = T0 - timedelta(hours=1)
    return tuple(
        Instance(
            i,
            SOURCE,
            ready=i not in failed and i not in stuck,
            ready_since=None if i in failed or i in stuck else hour_ago,
            created=hour_ago,
            failed=i in failed,
        )
        for i in range(size)
    )


_BATCH_1 = Rollout(
    SOURCE, TARGET, T0 - timedelta(minutes=1), phase="Waiting", batch=1, members=(0, 1)
)
_READY_5S = Instance(
    0, TARGET, ready=True, ready_since=T0 - timedelta(seconds=5), created=T0 - timedelta(seconds=30)
)
_STARTING = Instance(1, TARGET, created=T0 - timedelta(seconds=50))
_EVICTED = Instance(1, TARGET, created=T0 - timedelta(seconds=50), failed=True)
_NEVER_CREATED = Rollout(
    SOURCE,
    TARGET,
    T0 - timedelta(minutes=6),
    batch=1,
    members=(0, 1),
    phase_since=T0 - timedelta(minutes=5),
    batch_since=T0 - timedelta(minutes=5),
)
_FAULTED = Rollout(SOURCE, TARGET, T0, code="Faulted", phase="Done", error_code=UPGRADED)
_MIN_READY = Policy(min_ready=timedelta(seconds=15))
_UPGRADE = f"{SOURCE} -> {TARGET}"
_WINDOW = Hold(
    "OutsideMaintenanceWindow",
    "next window opens 2026-11-22T12:00:00+01:00",
    T0 + timedelta(hours=2),
)
_HELD = (
    "held by OutsideMaintenanceWindow until 2026-11-22T11:00:00Z: next window opens "
    "2026-11-22T12:00:00+01:00"
)


def _on_target(fleet: tuple[Instance, ...], upgraded: int) -> tuple[Instance, ...]:
    """`fleet` with its first `upgraded` instances on the target."""
    return tuple(replace(i, revision=TARGET) if i.index < upgraded else i for i in fleet)


def _after_batch(batch: int) -> Rollout:
    """Between batches: `batch` batches of 2 done, the pause after them over."""
    return Rollout(
        SOURCE,
        TARGET,
        T0 - timedelta(minutes=10),
        phase="Pausing",
        batch=batch,
        upgraded=tuple(range(2 * batch)),
        phase_since=T0 - timedelta(minutes=5),
    )


@pytest.mark.parametrize(
    ("observed", "rollout", "policy", "notes"),
    [
        pytest.param(
            Observation(10, _steady_fleet(10), SOURCE, SOURCE),
            None,
            Policy(),
            (f"no upgrade: fleet at target {SOURCE}, 10 of 10 present",),
            id="idle-at-target",
        ),
        pytest.param(
            Observation(3, _steady_fleet(3), SOURCE, None),
            None,
            Policy(),
            ("no upgrade: no target revision known, 3 of 3 present",),
            id="no-target-yet",
        ),
        pytest.param(
            Observation(10, _steady_fleet(10), SOURCE, TARGET, may_start=False),
            None,
            Policy(),
            (f"no upgrade: {_UPGRADE} may not start by itself (waits for a start request)",),
            id="waits-for-a-start-request",
        ),
        pytest.param(
            Observation(10, _steady_fleet(10), SOURCE, TARGET, paused=True),
            None,
            Policy(),
            (f"no upgrade: {_UPGRADE} held while the ScaleSet is paused",),
            id="paused-before-the-start",
        ),
        pytest.param(
            Observation(10, _steady_fleet(10), SOURCE, TARGET, holds=(_WINDOW,)),
            None,
            Policy(),
            (f"no upgrade: {_UPGRADE} {_HELD}",),
            id="held-before-the-start",
        ),
        pytest.param(
            Observation(10, _on_target(_steady_fleet(10), 2), SOURCE, TARGET, holds=(_WINDOW,)),
            _after_batch(1),
            Policy(),
            (f"batch 2 waits (2 of 10 upgraded): {_HELD}",),
            id="held-between-batches",
        ),
        pytest.param(
            Observation(10, _on_target(_steady_fleet(10), 10), SOURCE, TARGET, holds=(_WINDOW,)),
            _after_batch(4),
            Policy(),
            (
                "before batch 5: 0 of 10 unhealthy, at most 2 allowed (20%)",
                f"completed: all 10 instances run {TARGET}",
            ),
            id="held-with-nothing-left-to-replace-completes",
        ),
        pytest.param(
            Observation(10, _steady_fleet(10)[2:], SOURCE, TARGET, holds=(_WINDOW,)),
            _NEVER_CREATED,
            Policy(),
            (
                f"batch 1 finishes, the next one waits: {_HELD}",
                "batch 1 of 5: health timeout (5m) passed since the batch began, instances "
                "0, 1 gone: judging the batch",
                f"batch 1 of 5 done: 0 healthy, 2 unhealthy (instances 0, 1) on {TARGET}",
                "2 of 2 upgraded unhealthy, at most 0 allowed (20%): Faulted",
                f"rollback on: instances 0, 1 go back to {SOURCE}",
                f"rollback of instances 0, 1: 0 of 2 on {SOURCE}, health timeout in 5m",
                f"creating instances 0, 1 on {SOURCE}, keeping their indexes and data disks",
            ),
            id="a-held-batch-is-still-judged-and-rolled-back",
        ),
        pytest.param(
            Observation(12, _steady_fleet(10), SOURCE, TARGET),
            None,
            Policy(),
            (
                f"no upgrade yet: {_UPGRADE} waits for the fleet to be whole, 10 of 12 present",
                f"creating missing instances 10, 11 on {SOURCE} (10 of 12 present)",
            ),
            id="scale-out-before-the-start",
        ),
        pytest.param(
            Observation(8, _steady_fleet(10), SOURCE, SOURCE),
            None,
            Policy(),
            (
                f"no upgrade: fleet at target {SOURCE}, 8 of 8 present, 2 above capacity",
                "scaling in to 8: deleting instances 8, 9 (highest indexes first)",
            ),
            id="scale-in",
        ),
        pytest.param(
            Observation(10, _steady_fleet(10), SOURCE, TARGET),
            _FAULTED,
            Policy(),
            (
                f"no upgrade: the upgrade to {TARGET} ended Faulted ({UPGRADED}); "
                "not retried until a user asks",
            ),
            id="a-faulted-target-is-not-retried",
        ),
        pytest.param(
            Observation(10, _steady_fleet(10, stuck=(7, 8, 9)), SOURCE, TARGET),
            None,
            Policy(),
            (
                f"upgrade {_UPGRADE}: starting (a new target revision)",
                "before batch 1: 3 of 10 unhealthy (instances 7-9), at most 2 allowed (20%): "
                "Faulted",
            ),
            id="too-many-unhealthy-before-the-first-batch",
        ),
        pytest.param(
            Observation(10, _steady_fleet(10, failed=(7, 8, 9)), SOURCE, TARGET),
            None,
            Policy(),
            (
                f"no upgrade yet: {_UPGRADE} waits for the fleet to be whole, 10 of 10 present, "
                "3 failed",
                "deleting failed instances 7-9 (evicted or stopped for good): they come back "
                f"on {SOURCE} with the same data disks",
            ),
            id="failed-instances-are-replaced-before-an-upgrade-starts",
        ),
        pytest.param(
            Observation(10, _steady_fleet(10)[2:], SOURCE, TARGET),
            _NEVER_CREATED,
            Policy(),
            (
                "batch 1 of 5: health timeout (5m) passed since the batch began, instances "
                "0, 1 gone: judging the batch",
                f"batch 1 of 5 done: 0 healthy, 2 unhealthy (instances 0, 1) on {TARGET}",
                "2 of 2 upgraded unhealthy, at most 0 allowed (20%): Faulted",
                f"rollback on: instances 0, 1 go back to {SOURCE}",
                f"rollback of instances 0, 1: 0 of 2 on {SOURCE}, health timeout in 5m",
                f"creating instances 0, 1 on {SOURCE}, keeping their indexes and data disks",
            ),
            id="a-batch-whose-pods-never-come-is-judged-at-its-health-timeout",
        ),
        pytest.param(
            Observation(10, _steady_fleet(10)[2:], SOURCE, TARGET),
            replace(_NEVER_CREATED, batch_since=None),
            Policy(),
            (
                "batch 1 of 5: health timeout (5m) passed since the batch began, instances "
                "0, 1 gone: judging the batch",
                f"batch 1 of 5 done: 0 healthy, 2 unhealthy (instances 0, 1) on {TARGET}",
                "2 of 2 upgraded unhealthy, at most 0 allowed (20%): Faulted",
                f"rollback on: instances 0, 1 go back to {SOURCE}",
                f"rollback of instances 0, 1: 0 of 2 on {SOURCE}, health timeout in 5m",
                f"creating instances 0, 1 on {SOURCE}, keeping their indexes and data disks",
            ),
            id="a-record-without-batch-start-counts-from-phase-since",
        ),
        pytest.param(
            Observation(10, _steady_fleet(10)[2:], SOURCE, TARGET),
            replace(_NEVER_CREATED, batch_since=T0 - timedelta(minutes=4)),
            Policy(),
            (
                f"batch 1 of 5: 0 of 2 on {TARGET}, health timeout in 1m",
                f"creating instances 0, 1 on {TARGET}, keeping their indexes and data disks",
            ),
            id="a-batch-whose-pods-do-not-come-yet-waits-until-its-health-timeout",
        ),
        pytest.param(
            Observation(10, (_READY_5S, _EVICTED, *_steady_fleet(10)[2:]), SOURCE, TARGET),
            _BATCH_1,
            Policy(max_unhealthy_upgraded_percent=50),
            (
                f"batch 1 of 5 done: 1 healthy, 1 unhealthy (instance 1) on {TARGET}",
                "1 of 2 upgraded unhealthy, at most 1 allowed (50%)",
                "no pause between batches",
                "before batch 2: 1 of 10 unhealthy (instance 1), at most 2 allowed (20%)",
                "batch 2 of 5: replacing instances 2, 3 (2 per batch: 20% of 10)",
                f"batch 2 of 5: 0 of 2 on {TARGET}, health timeout in 5m",
                "deleting failed instance 1 (evicted or stopped for good): it comes back on "
                f"{TARGET} with the same data disks",
                f"deleting instances 2, 3: they come back on {TARGET} with the same data disks",
            ),
            id="a-member-evicted-during-the-health-check-is-unhealthy-then-replaced",
        ),
        pytest.param(
            Observation(10, (_READY_5S, *_steady_fleet(10)[2:]), SOURCE, TARGET),
            _BATCH_1,
            Policy(),
            (
                f"batch 1: instance 1 gone during the health check; put back on {TARGET}",
                f"batch 1 of 5: 1 of 2 on {TARGET}, health timeout in 4m",
                f"creating instance 1 on {TARGET}, keeping its index and data disks",
            ),
            id="a-member-vanishes-while-waiting",
        ),
        pytest.param(
            Observation(10, (_READY_5S, _STARTING, *_steady_fleet(10)[2:]), SOURCE, TARGET),
            replace(_BATCH_1, cancel_requested=True),
            _MIN_READY,
            (
                "cancel requested: batch 1 finishes, no batch starts after it",
                "batch 1 of 5: 0 of 2 healthy",
                "waiting: instance 0 Ready, Healthy after minReady in 10s",
                "waiting: instance 1 Initializing, health timeout in 4m",
            ),
            id="cancel-requested-during-a-batch",
        ),
    ],
)
def test_the_notes_of_one_decision(
    observed: Observation, rollout: Rollout | None, policy: Policy, notes: tuple[str, ...]
) -> None:
    assert plan(observed, rollout, policy, T0).notes == notes


def test_a_scale_in_below_a_member_of_the_running_batch_creates_nothing_beyond_capacity() -> None:
    scale_in = Scenario("scale-in-under-the-running-batch", None, changes=(Change(5, capacity=8),))
    run = replay(scale_in, 1)  # batch 5 is instances 8 and 9; every step checks the range
    assert run.rollout is not None and run.rollout.code == "Completed"
    assert sorted(run.world.pods) == list(range(8))
    assert {pod.revision for pod in run.world.pods.values()} == {TARGET}


@pytest.mark.parametrize(("name", "seed"), [pytest.param(n, s, id=n) for n, s in GOLDEN_RUNS])
def test_golden_log(name: str, seed: int) -> None:
    text = "\n".join(replay(BY_NAME[name], seed).log) + "\n"
    path = GOLDEN / f"{name}.log"
    if UPDATE_GOLDEN:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"no {path}: run with GALLEON_UPDATE_GOLDEN=1 to write it"
    expected = path.read_text()
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            text.splitlines(keepends=True),
            str(path),
            "this run",
        )
    )
    assert text == expected, f"the run differs (GALLEON_UPDATE_GOLDEN=1 accepts it):\n{diff}"


def test_a_golden_run_replays_identically() -> None:
    name, seed = GOLDEN_RUNS[0]
    assert replay(BY_NAME[name], seed).log == replay(BY_NAME[name], seed).log
