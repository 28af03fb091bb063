"""The upgrade preview (`galleon.core.rollout.preview`): the planner replayed over a
simulated fleet shows the batches still to come, their earliest starts and how the
upgrade ends, for a new upgrade, one half-way, unhealthy instances first, a pause
between batches, Manual mode, a paused ScaleSet and a fault before a batch; and the
batches it shows are the ones the planner takes when driven step by step."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from galleon.core import rollout as ro

T0 = datetime(2026, 12, 2, 18, 30, tzinfo=UTC)
HOUR_AGO = T0 - timedelta(hours=1)
OLD, NEW = "1.0.0-h", "1.0.1-h"


def healthy(index: int, revision: str = OLD) -> ro.Instance:
    return ro.Instance(index, revision, ready=True, ready_since=HOUR_AGO, created=HOUR_AGO)


def fleet(capacity: int = 10, on_new: tuple[int, ...] = ()) -> list[ro.Instance]:
    return [healthy(i, NEW if i in on_new else OLD) for i in range(capacity)]


def observation(instances: list[ro.Instance], **kw: object) -> ro.Observation:
    return ro.Observation(len(instances), instances, OLD, NEW, **kw)  # type: ignore[arg-type]


def shown(seen: ro.Preview) -> list[tuple[int, tuple[int, ...]]]:
    return [(b.number, b.instances) for b in seen.batches]


def test_a_new_upgrade_shows_every_batch_and_completes() -> None:
    seen = ro.preview(observation(fleet()), None, ro.Policy(), T0)
    assert shown(seen) == [(1, (0, 1)), (2, (2, 3)), (3, (4, 5)), (4, (6, 7)), (5, (8, 9))]
    assert seen.outcome == "Completed" and seen.total == 5 and seen.running is None
    # Nothing to wait for (no pause, no minReady, instances Ready at once): all at once.
    assert {b.earliest for b in seen.batches} == {T0} and seen.ends == T0
    assert seen.first_notes[0] == f"upgrade {OLD} -> {NEW}: starting (a new target revision)"
    assert seen.last_notes[-1] == f"completed: all 10 instances run {NEW}"
    assert seen.rollout is not None and seen.rollout.code == "Completed"


def half_way(phase: ro.Phase) -> ro.Rollout:
    """Batch 2 of 5 of 1.0.0 -> 1.0.1, begun a minute ago; instances 0 and 1 upgraded."""
    began = T0 - timedelta(minutes=1)
    return ro.Rollout(
        OLD,
        NEW,
        T0 - timedelta(minutes=10),
        phase=phase,
        batch=2,
        members=(2, 3),
        upgraded=(0, 1),
        phase_since=began,
        batch_since=began,
    )


def test_an_upgrade_half_way_shows_the_running_batch_then_the_rest() -> None:
    """Batch 2 of 5 is running (instance 2 back on the target, 3 still being deleted):
    the preview finishes it and shows batches 3 to 5."""
    recorded = half_way("Replacing")
    instances = fleet(on_new=(0, 1, 2))
    instances[3] = replace(instances[3], deleting=True)
    seen = ro.preview(observation(instances), recorded, ro.Policy(), T0)
    assert seen.running == ro.PreviewBatch(2, (2, 3), T0 - timedelta(minutes=1))
    assert shown(seen) == [(3, (4, 5)), (4, (6, 7)), (5, (8, 9))]
    assert seen.total == 5 and seen.outcome == "Completed"
    assert seen.first_notes == (
        "batch 2 of 5: 1 of 2 on 1.0.1-h, instance 3 still deleting, health timeout in 4m",
    )
    # The watch shows instance 3 gone at once: it is re-created, and batch 3 may start.
    assert seen.batches[0].earliest == T0


def test_a_member_that_never_gets_ready_faults_the_upgrade_at_its_health_timeout() -> None:
    """What is observed stays as it is: instance 3 of the running batch, on the target
    but not Ready, is Unhealthy when the batch's timeout passes (1 of 4 upgraded, more
    than 20%): Faulted, and instance 3 goes back to the source."""
    recorded = half_way("Waiting")
    began = T0 - timedelta(minutes=1)
    instances = fleet(on_new=(0, 1, 2))
    instances[3] = ro.Instance(3, NEW, created=began)
    seen = ro.preview(observation(instances), recorded, ro.Policy(), T0)
    assert seen.outcome == "Faulted" and seen.batches == ()
    assert seen.first_notes == (
        "batch 2 of 5: 1 of 2 healthy",
        "waiting: instance 3 Initializing, health timeout in 4m",
    )
    assert seen.ends == began + timedelta(minutes=5)
    assert seen.last_notes == ("rollback done: instances 3 are back on 1.0.0-h, healthy",)
    assert seen.rollout is not None and seen.rollout.rolled_back == (3,)


def test_unhealthy_instances_go_first_when_prioritized() -> None:
    instances = fleet()
    instances[7] = ro.Instance(7, OLD, created=HOUR_AGO)  # never Ready: Unhealthy
    policy = ro.Policy(prioritize_unhealthy=True)
    seen = ro.preview(observation(instances), None, policy, T0)
    assert shown(seen)[:2] == [(1, (0, 7)), (2, (1, 2))]
    assert any("unhealthy first: instance 7" in note for note in seen.first_notes)
    plain = ro.preview(observation(instances), None, ro.Policy(), T0)
    assert shown(plain)[:2] == [(1, (0, 1)), (2, (2, 3))]


def test_a_pause_between_batches_and_min_ready_space_the_earliest_starts() -> None:
    policy = ro.Policy(
        max_batch_percent=30,
        max_unhealthy_percent=30,
        pause=timedelta(minutes=10),
        min_ready=timedelta(seconds=30),
    )
    seen = ro.preview(observation(fleet()), None, policy, T0)
    assert shown(seen) == [(1, (0, 1, 2)), (2, (3, 4, 5)), (3, (6, 7, 8)), (4, (9,))]
    step = timedelta(minutes=10, seconds=30)  # Healthy after minReady, then the pause
    assert [b.earliest for b in seen.batches] == [T0 + k * step for k in range(4)]
    assert seen.ends == T0 + 3 * step + timedelta(seconds=30)
    assert seen.total == 4


@pytest.mark.parametrize(
    ("observed", "note"),
    [
        pytest.param(
            observation(fleet(), may_start=False),
            f"no upgrade: {OLD} -> {NEW} may not start by itself (waits for a start request)",
            id="manual-mode",
        ),
        pytest.param(
            observation(fleet(), paused=True),
            f"no upgrade: {OLD} -> {NEW} held while the ScaleSet is paused",
            id="paused",
        ),
        pytest.param(
            ro.Observation(10, fleet(on_new=tuple(range(10))), NEW, NEW),
            f"no upgrade: fleet at target {NEW}, 10 of 10 present",
            id="at-target",
        ),
    ],
)
def test_no_upgrade_starts_and_the_planner_says_why(observed: ro.Observation, note: str) -> None:
    seen = ro.preview(observed, None, ro.Policy(), T0)
    assert seen.outcome == "Idle" and seen.batches == () and seen.total == 0
    assert seen.first_notes == (note,) and seen.ends is None and seen.steps == 1


def test_a_start_request_starts_what_manual_mode_holds() -> None:
    seen = ro.preview(
        observation(fleet(), may_start=False, start_requested=True), None, ro.Policy(), T0
    )
    assert seen.outcome == "Completed" and len(seen.batches) == 5
    assert seen.first_notes[0] == f"upgrade {OLD} -> {NEW}: starting (a user asked)"


def test_a_missing_instance_is_created_first_then_the_upgrade_starts() -> None:
    instances = fleet()
    del instances[4]
    seen = ro.preview(ro.Observation(10, instances, OLD, NEW), None, ro.Policy(), T0)
    assert "creating missing instance 4 on 1.0.0-h (9 of 10 present)" in seen.first_notes
    assert shown(seen)[0] == (1, (0, 1)) and seen.outcome == "Completed"


def test_pausing_the_scaleset_mid_rollout_holds_after_the_running_batch() -> None:
    recorded = ro.Rollout(
        OLD,
        NEW,
        HOUR_AGO,
        phase="Replacing",
        batch=1,
        members=(0, 1),
        batch_since=T0,
        phase_since=T0,
    )
    seen = ro.preview(observation(fleet(), paused=True), recorded, ro.Policy(), T0)
    assert seen.outcome == "Held" and seen.batches == () and seen.ends is None
    assert seen.running == ro.PreviewBatch(1, (0, 1), T0)
    assert seen.last_notes == (
        "paused: batch 2 waits for the ScaleSet to be resumed (2 of 10 upgraded)",
    )
    assert seen.total == 5  # as planned: "batch 1 of 5"


def test_too_many_unhealthy_instances_fault_before_the_first_batch() -> None:
    instances = [*fleet(7), *(ro.Instance(i, OLD, created=HOUR_AGO) for i in (7, 8, 9))]
    seen = ro.preview(observation(instances), None, ro.Policy(), T0)
    assert seen.outcome == "Faulted" and seen.batches == () and seen.ends == T0
    assert seen.last_notes[-1] == (
        "before batch 1: 3 of 10 unhealthy (instances 7-9), at most 2 allowed (20%): Faulted"
    )


def test_a_cancel_requested_stops_after_the_running_batch() -> None:
    recorded = ro.Rollout(
        OLD,
        NEW,
        HOUR_AGO,
        phase="Replacing",
        batch=1,
        members=(0, 1),
        batch_since=T0,
        phase_since=T0,
        cancel_requested=True,
    )
    seen = ro.preview(observation(fleet()), recorded, ro.Policy(), T0)
    assert seen.outcome == "Cancelled" and seen.batches == ()


def test_the_replay_is_bounded() -> None:
    seen = ro.preview(observation(fleet()), None, ro.Policy(), T0, max_steps=3)
    assert seen.outcome == "Unfinished" and seen.steps == 3 and seen.ends is None
    assert shown(seen) == [(1, (0, 1)), (2, (2, 3))]


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(1, 40),
    percent=st.sampled_from([5, 10, 20, 33, 50, 100]),
    already=st.sets(st.integers(0, 39), max_size=10),
    pause=st.integers(0, 600),
    prioritize=st.booleans(),
)
def test_the_batches_shown_are_those_the_planner_takes_step_by_step(
    capacity: int, percent: int, already: set[int], pause: int, prioritize: bool
) -> None:
    """Drive the planner by hand (apply, then advance to its requeue) over the same
    fleet: it starts exactly the batches the preview shows, at the same moments; the
    batches cover every instance not yet on the target once, each within the batch
    size."""
    policy = ro.Policy(
        max_batch_percent=percent,
        max_unhealthy_percent=100,
        pause=timedelta(seconds=pause),
        prioritize_unhealthy=prioritize,
    )
    instances = fleet(capacity, on_new=tuple(i for i in already if i < capacity))
    observed = observation(instances)
    seen = ro.preview(observed, None, policy, T0)

    taken: list[ro.PreviewBatch] = []
    alive = {i.index: i for i in instances}
    rollout, now = None, T0
    for _ in range(2000):
        decided = ro.plan(replace(observed, instances=tuple(alive.values())), rollout, policy, now)
        new = decided.rollout
        if (
            new is not None
            and new.code == "RollingForward"
            and new.batch > (rollout.batch if rollout is not None else 0)
        ):
            taken.append(ro.PreviewBatch(new.batch, new.members, now))
        for action in decided.actions:
            if isinstance(action, ro.Delete):
                del alive[action.index]
            else:
                alive[action.index] = ro.Instance(
                    action.index, action.revision, ready=True, ready_since=now, created=now
                )
        moved = bool(decided.actions) or new != rollout
        rollout = new
        if rollout is not None and not rollout.active:
            break
        if not moved:
            now += timedelta(seconds=decided.requeue_after)
    assert tuple(taken) == seen.batches
    assert seen.outcome == "Completed"
    members = [i for b in seen.batches for i in b.instances]
    assert sorted(members) == sorted(set(range(capacity)) - already)
    size = ro.batch_size(capacity, percent)
    assert all(1 <= len(b.instances) <= size for b in seen.batches)
    assert [b.number for b in seen.batches] == list(range(1, len(seen.batches) + 1))
    assert seen.total == len(seen.batches)


def test_a_hold_without_an_end_holds_the_next_batch() -> None:
    """A quarantined version (a hold with no `until`) lets the running batch finish and
    holds the next one: Held, the planner saying who holds."""
    quarantine = ro.Hold("VersionQuarantined", "1.0.1 is quarantined")
    recorded = ro.Rollout(
        OLD,
        NEW,
        HOUR_AGO,
        phase="Replacing",
        batch=1,
        members=(0, 1),
        batch_since=T0,
        phase_since=T0,
    )
    seen = ro.preview(observation(fleet(), holds=(quarantine,)), recorded, ro.Policy(), T0)
    assert seen.outcome == "Held" and seen.batches == ()
    assert any("1.0.1 is quarantined" in note for note in seen.last_notes), seen.last_notes
    nothing = ro.preview(observation(fleet(), holds=(quarantine,)), None, ro.Policy(), T0)
    assert nothing.outcome == "Idle" and nothing.steps == 1


def test_holds_that_change_with_time_are_asked_at_every_decision() -> None:
    """Maintenance windows of ten minutes at the top of each hour: a batch starts only
    inside one (the hold lifts when a window opens and holds again when it closes)."""

    def windows(at: datetime) -> list[ro.Hold]:
        if at.minute < 10:
            return []
        opens = at.replace(minute=0, second=0) + timedelta(hours=1)
        return [ro.Hold("OutsideMaintenanceWindow", f"opens {opens:%H:%M}", opens)]

    policy = ro.Policy(pause=timedelta(minutes=4))
    seen = ro.preview(observation(fleet()), None, policy, T0, holds_at=windows)
    assert [f"{b.earliest:%H:%M}" for b in seen.batches] == [
        "19:00",
        "19:04",
        "19:08",
        "20:00",
        "20:04",
    ]
    assert seen.outcome == "Completed" and seen.total == 5
