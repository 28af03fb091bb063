"""The rollout planner, driven by a simulated fleet: batches, health gates, rollback.

The simulator plays the cluster: a Create makes a pod that turns Ready after a
delay (or never, for a "bad" version); a Delete removes it. The planner is
called again after its requeue delay, with only what it persisted — exactly
what a restarted operator would see.
"""

from __future__ import annotations

import doctest
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from galleon.core import rollout as ro
from galleon.core.rollout import (
    BEFORE,
    UPGRADED,
    Create,
    Delete,
    Hold,
    Instance,
    Observation,
    Policy,
    Rollout,
    batch_size,
    plan,
)

T0 = datetime(2026, 11, 22, tzinfo=UTC)


def test_doctests() -> None:
    assert doctest.testmod(ro).failed == 0


@dataclass
class Cluster:
    capacity: int
    bad: set[str] = field(default_factory=set)
    ready_delay: timedelta = timedelta(seconds=5)
    pods: dict[int, Instance] = field(default_factory=dict)
    now: datetime = T0
    created: list[Create] = field(default_factory=list)
    max_unavailable: int = 0
    stuck: set[tuple[int, str | None]] = field(default_factory=set)
    """(index, revision) of pods that never become Ready."""

    def start(
        self,
        version: str,
        broken: set[int] = frozenset(),  # type: ignore[assignment]
        stuck: set[int] = frozenset(),  # type: ignore[assignment]
    ) -> None:
        """All on `version`, Ready but `broken` (failed pods) and `stuck` (never Ready)."""
        self.stuck = {(index, version) for index in stuck}
        for index in range(self.capacity):
            ok = index not in broken and index not in stuck
            self.pods[index] = Instance(
                index,
                version,
                ready=ok,
                ready_since=T0 - timedelta(hours=1) if ok else None,
                created=T0 - timedelta(hours=1),
                failed=index in broken,
            )

    def observe(self) -> list[Instance]:
        seen = []
        for pod in self.pods.values():
            becomes_ready = (
                pod.revision not in self.bad
                and not pod.failed
                and (pod.index, pod.revision) not in self.stuck
            )
            if not pod.ready and becomes_ready and self.now >= pod.created + self.ready_delay:
                pod = replace(pod, ready=True, ready_since=pod.created + self.ready_delay)
                self.pods[pod.index] = pod
            seen.append(pod)
        unavailable = sum(
            1 for i in range(self.capacity) if i not in self.pods or not self.pods[i].ready
        )
        self.max_unavailable = max(self.max_unavailable, unavailable)
        return seen

    def next_ready(self) -> datetime | None:
        """When a pod becomes Ready next (the watch wakes the controller then)."""
        moments = [
            pod.created + self.ready_delay
            for pod in self.pods.values()
            if not pod.ready
            and not pod.failed
            and pod.revision not in self.bad
            and (pod.index, pod.revision) not in self.stuck
        ]
        return min(moments) if moments else None

    def apply(self, actions: tuple[Create | Delete, ...]) -> None:
        for action in actions:
            if isinstance(action, Create):
                assert action.index not in self.pods, f"create over an existing pod {action}"
                self.created.append(action)
                self.pods[action.index] = Instance(action.index, action.revision, created=self.now)
            else:
                self.pods.pop(action.index, None)


def drive(
    cluster: Cluster,
    current: str,
    target: str,
    policy: Policy,
    *,
    steps: int = 400,
    state: Rollout | None = None,
) -> tuple[Rollout | None, list[ro.Event]]:
    events: list[ro.Event] = []
    for _ in range(steps):
        fleet = Observation(cluster.capacity, cluster.observe(), current, target)
        decided = plan(fleet, state, policy, cluster.now)
        # The same observation gives the same decision (idempotent).
        assert plan(fleet, state, policy, cluster.now) == decided
        events.extend(decided.events)
        cluster.apply(decided.actions)
        state = decided.rollout
        if state is not None and not state.active and not decided.actions:
            break
        if decided.actions:
            continue  # the watch shows the pods deleted or created at once
        wake = cluster.now + timedelta(seconds=max(1.0, min(decided.requeue_after, 30.0)))
        ready = cluster.next_ready()
        cluster.now = min(wake, ready) if ready is not None and ready > cluster.now else wake
    return state, events


def test_batch_size_follows_the_cloud_rule() -> None:
    assert [batch_size(n, 20) for n in (1, 2, 5, 10, 11, 100)] == [1, 1, 1, 2, 2, 20]


def test_ten_instances_roll_in_batches_of_two() -> None:
    cluster = Cluster(10)
    cluster.start("1.0.0")
    state, events = drive(cluster, "1.0.0", "1.0.2", Policy())
    assert state is not None and state.code == "Completed"
    assert all(p.revision == "1.0.2" for p in cluster.pods.values())
    assert cluster.max_unavailable <= 2
    assert [e.reason for e in events].count("BatchStarted") == 5
    assert sorted(c.index for c in cluster.created) == list(range(10))  # each index once


def test_a_version_that_never_becomes_ready_faults_and_rolls_back() -> None:
    cluster = Cluster(10, bad={"2.0.0"})
    cluster.start("1.0.0")
    state, events = drive(cluster, "1.0.0", "2.0.0", Policy())
    assert state is not None and state.code == "Faulted"
    assert state.error_code == UPGRADED
    assert state.rolled_back == (0, 1)
    assert all(p.revision == "1.0.0" for p in cluster.pods.values())
    assert "RolledBack" in [e.reason for e in events]
    # Not retried by itself: the same target again plans nothing.
    again = plan(Observation(10, cluster.observe(), "1.0.0", "2.0.0"), state, Policy(), cluster.now)
    assert again.actions == () and again.rollout == state


def test_without_rollback_failed_instances_stay() -> None:
    cluster = Cluster(5, bad={"2.0.0"})
    cluster.start("1.0.0")
    state, _ = drive(cluster, "1.0.0", "2.0.0", Policy(rollback=False))
    assert state is not None and state.code == "Faulted" and state.rolled_back == ()
    assert cluster.pods[0].revision == "2.0.0"


def test_too_many_unhealthy_before_a_batch_stops_the_upgrade() -> None:
    cluster = Cluster(10)
    cluster.start("1.0.0", stuck={7, 8, 9})
    state, _events = drive(cluster, "1.0.0", "1.0.2", Policy())
    assert state is not None and state.code == "Faulted" and state.error_code == BEFORE
    assert all(p.revision == "1.0.0" for p in cluster.pods.values())


def test_failed_instances_are_replaced_then_the_upgrade_runs() -> None:
    # Evicted pods (phase Failed) would count as unhealthy before every batch, for good;
    # replaced as a StatefulSet would, they come back on 1.0.0 and the upgrade runs.
    cluster = Cluster(10)
    cluster.start("1.0.0", broken={7, 8, 9})
    state, _ = drive(cluster, "1.0.0", "1.0.2", Policy())
    assert state is not None and state.code == "Completed"
    assert all(p.revision == "1.0.2" and not p.failed for p in cluster.pods.values())
    assert [c.index for c in cluster.created if c.revision == "1.0.0"] == [7, 8, 9]


def test_pause_between_batches_and_cancel() -> None:
    cluster = Cluster(10)
    cluster.start("1.0.0")
    policy = Policy(pause=timedelta(minutes=1))
    state, _ = drive(cluster, "1.0.0", "1.0.2", policy, steps=8)
    assert state is not None and state.active and state.batch >= 1
    batches = state.batch
    cancelled = replace(state, cancel_requested=True)
    state, events = drive(cluster, "1.0.0", "1.0.2", policy, state=cancelled)
    assert state is not None and state.code == "Cancelled"
    assert state.batch == batches  # the running batch finished, no new one started
    upgraded = sum(p.revision == "1.0.2" for p in cluster.pods.values())
    assert upgraded == len(state.upgraded) == 2 * batches < 10
    # Between batches the pause was honoured: no batch started within a minute of another.
    starts = [e for e in events if e.reason == "BatchStarted"]
    assert starts == []


def test_scale_out_and_in() -> None:
    cluster = Cluster(3)
    cluster.start("1.0.0")
    out = plan(Observation(5, cluster.observe(), "1.0.0", "1.0.0"), None, Policy(), T0)
    assert out.actions == (Create(3, "1.0.0"), Create(4, "1.0.0"))
    shrink = plan(Observation(1, cluster.observe(), "1.0.0", "1.0.0"), None, Policy(), T0)
    assert shrink.actions == (Delete(2, "ScaleIn"), Delete(1, "ScaleIn"))


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(1, 24),
    percent=st.integers(5, 100),
    unhealthy_percent=st.integers(5, 100),
    bad=st.booleans(),
    delay=st.integers(0, 290),  # below the 5-minute health timeout
    restarts=st.lists(st.integers(0, 60), max_size=5),
)
def test_rollout_invariants(
    capacity: int, percent: int, unhealthy_percent: int, bad: bool, delay: int, restarts: list[int]
) -> None:
    percent = min(percent, unhealthy_percent)  # the CRD refuses batch > unhealthy
    policy = Policy(max_batch_percent=percent, max_unhealthy_percent=unhealthy_percent)
    cluster = Cluster(
        capacity, bad={"2.0.0"} if bad else set(), ready_delay=timedelta(seconds=delay)
    )
    cluster.start("1.0.0")
    # "Restarts" are free here by construction: each step starts from the
    # persisted state alone; we still interleave no-op observations.
    state, _ = drive(cluster, "1.0.0", "2.0.0", policy, steps=2000)
    size = batch_size(capacity, percent)
    assert cluster.max_unavailable <= size
    upgrades = [c.index for c in cluster.created if c.revision == "2.0.0"]
    assert len(upgrades) == len(set(upgrades)), "an instance was upgraded twice"
    assert state is not None
    if not bad:
        assert state.code == "Completed"
        assert all(p.revision == "2.0.0" for p in cluster.pods.values())
    else:
        assert state.code == "Faulted"
        assert len(upgrades) <= size  # the first batch shows the fault
        assert all(p.revision == "1.0.0" for p in cluster.pods.values())


def test_a_user_start_retries_a_faulted_target_and_skips_instances_already_on_it() -> None:
    cluster = Cluster(10, bad={"2.0.0"})
    cluster.start("1.0.0")
    state, _ = drive(cluster, "1.0.0", "2.0.0", Policy())
    assert state is not None and state.code == "Faulted"
    cluster.bad = set()  # the version was fixed where it runs
    for index in (8, 9):  # and two instances were moved to it by hand
        cluster.pods[index] = Instance(index, "2.0.0", ready=True, created=cluster.now)
    cluster.now += timedelta(minutes=1)
    fleet = Observation(
        10, cluster.observe(), "1.0.0", "2.0.0", may_start=False, start_requested=True
    )
    first = plan(fleet, state, Policy(), cluster.now)
    assert first.rollout is not None and first.rollout.started == cluster.now
    assert first.rollout.code == "RollingForward"
    created_before = len(cluster.created)
    state, _ = drive(cluster, "1.0.0", "2.0.0", Policy(), state=first.rollout)
    assert state is not None and state.code == "Completed"
    replaced = sorted(c.index for c in cluster.created[created_before:])
    assert 8 not in replaced and 9 not in replaced
    assert all(p.revision == "2.0.0" for p in cluster.pods.values())


def test_a_member_deleted_by_someone_else_is_recreated_not_counted_unhealthy() -> None:
    cluster = Cluster(10)
    cluster.start("1.0.0")
    state, _ = drive(cluster, "1.0.0", "1.0.2", Policy(), steps=3)
    assert state is not None and state.phase in ("Replacing", "Waiting") and state.members
    victim = state.members[0]
    del cluster.pods[victim]  # e.g. a garbage collector or a user
    state, _ = drive(cluster, "1.0.0", "1.0.2", Policy(), state=state)
    assert state is not None and state.code == "Completed" and state.failed == ()
    assert all(p.revision == "1.0.2" for p in cluster.pods.values())


def test_a_batch_healthy_at_once_starts_the_next_batch_in_the_same_decision() -> None:
    # Members 0 and 1 already run the target and are healthy, no pause: this one decision
    # checks batch 1 and replaces batch 2 (docs/rollout.md: "in the same step").
    old, new = "1.0.0", "1.0.2"
    instances = [
        Instance(i, new if i < 2 else old, ready=True, ready_since=T0, created=T0)
        for i in range(10)
    ]
    running = Rollout(old, new, T0, batch=1, members=(0, 1), phase_since=T0)
    decided = plan(
        Observation(10, instances, old, new), running, Policy(), T0 + timedelta(minutes=1)
    )
    assert decided.rollout is not None
    assert (decided.rollout.batch, decided.rollout.members) == (2, (2, 3))
    assert decided.rollout.upgraded == (0, 1)
    assert sorted(a.index for a in decided.actions if isinstance(a, Delete)) == [2, 3]


WINDOW = "OutsideMaintenanceWindow"


def test_a_hold_starts_no_upgrade_and_looks_again_when_it_lifts() -> None:
    cluster = Cluster(10)
    cluster.start("1.0.0")
    opens = Hold(WINDOW, "next window opens in 12s", T0 + timedelta(seconds=12))
    quarantine = Hold("VersionQuarantined", "1.0.2 is quarantined")  # lifts when it lifts
    for holds, requeue in [
        ((opens,), 12.0),
        ((quarantine,), 30.0),
        ((quarantine, opens), 12.0),
        ((replace(opens, until=T0 - timedelta(seconds=5)),), 1.0),  # lifted: look at once
    ]:
        fleet = Observation(10, cluster.observe(), "1.0.0", "1.0.2", holds=holds)
        decided = plan(fleet, None, Policy(), T0)
        assert (decided.actions, decided.rollout, decided.events) == ((), None, ())
        assert decided.requeue_after == requeue, holds
    # A user's start request is held too: windows gate every start.
    asked = Observation(10, cluster.observe(), "1.0.0", "1.0.2", start_requested=True)
    assert plan(replace(asked, holds=(opens,)), None, Policy(), T0).rollout is None
    assert plan(asked, None, Policy(), T0).rollout is not None


def test_a_hold_mid_rollout_lets_the_batch_finish_then_no_batch_starts_until_it_lifts() -> None:
    cluster = Cluster(10)
    cluster.start("1.0.0")
    state, _ = drive(cluster, "1.0.0", "1.0.2", Policy(), steps=2)
    assert state is not None and state.batch == 1 and state.phase == "Replacing"
    lifts = T0 + timedelta(hours=1)
    hold = Hold(WINDOW, "next window opens in 1h", lifts)
    events: list[ro.Event] = []
    for _ in range(200):
        fleet = Observation(10, cluster.observe(), "1.0.0", "1.0.2", holds=(hold,))
        decided = plan(fleet, state, Policy(), cluster.now)
        events.extend(decided.events)
        cluster.apply(decided.actions)
        state = decided.rollout
        assert state is not None and state.batch == 1, "a batch started while held"
        if state.phase == "Pausing":
            break
        cluster.now += timedelta(seconds=decided.requeue_after)
    assert state is not None and state.upgraded == (0, 1) and state.code == "RollingForward"
    assert [e.reason for e in events] == ["BatchCompleted"]
    # Between batches the planner looks again no later than the hold lifts...
    cluster.now = lifts - timedelta(seconds=20)
    fleet = Observation(10, cluster.observe(), "1.0.0", "1.0.2", holds=(hold,))
    waiting = plan(fleet, state, Policy(), cluster.now)
    assert (waiting.actions, waiting.requeue_after) == ((), 20.0)
    # ... and once it has lifted, batch 2 starts.
    cluster.now = lifts
    state, _ = drive(cluster, "1.0.0", "1.0.2", Policy(), state=state)
    assert state is not None and state.code == "Completed"
    assert all(p.revision == "1.0.2" for p in cluster.pods.values())


def test_a_held_upgrade_can_still_be_cancelled() -> None:
    cluster = Cluster(10)
    cluster.start("1.0.0")
    state, _ = drive(cluster, "1.0.0", "1.0.2", Policy(), steps=3)
    assert state is not None and state.active
    held = Hold(WINDOW, "next window opens tomorrow", T0 + timedelta(days=1))
    while state.phase != "Pausing":  # the running batch finishes first
        fleet = Observation(10, cluster.observe(), "1.0.0", "1.0.2", holds=(held,))
        decided = plan(fleet, state, Policy(), cluster.now)
        cluster.apply(decided.actions)
        assert decided.rollout is not None
        state = decided.rollout
        cluster.now += timedelta(seconds=decided.requeue_after)
    fleet = Observation(10, cluster.observe(), "1.0.0", "1.0.2", holds=(held,), cancel=True)
    cancelled = plan(fleet, replace(state, cancel_requested=True), Policy(), cluster.now)
    assert cancelled.rollout is not None and cancelled.rollout.code == "Cancelled"
    assert cancelled.actions == ()
