"""Upgrade deferral (`osRollingUpgradeDeferral`), with injected time: a batch member is
told of its upgrade (`Notify`) and replaced once it approves or its deadline passed;
the deadline lives on the pod, so a restarted operator keeps it; the batch's health
timeout does not run while members wait; without deferral nothing changes.

A small in-memory fleet plays the cluster: a Notify writes the notice on the pod (as
the apply's PATCH does, removing an earlier approval), a Delete removes the pod, a
Create brings it back Ready on the revision asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from galleon.api.scaleset import ScaleSetSpec
from galleon.core import deferral
from galleon.core.observed import observe
from galleon.core.rollout import (
    Create,
    Delete,
    Instance,
    Notify,
    Observation,
    Plan,
    Policy,
    Rollout,
    UpgradeNotice,
    awaiting_approval,
    plan,
    preview,
)
from galleon.core.upgrade_trigger import policy_for

T0 = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)
OLD, NEW = "1.0.0-a", "1.0.2-a"
DEFERRAL = timedelta(minutes=10)
POLICY = Policy(deferral=DEFERRAL, health_timeout=timedelta(minutes=5))


@dataclass
class Fleet:
    """Two instances on OLD, Ready; `now` moves only when a test says so."""

    capacity: int = 2
    now: datetime = T0
    pods: dict[int, Instance] = field(default_factory=dict)
    rollout: Rollout | None = None

    def __post_init__(self) -> None:
        for index in range(self.capacity if not self.pods else 0):
            self.pods[index] = Instance(
                index, OLD, ready=True, ready_since=T0 - timedelta(hours=1), created=T0
            )

    def step(self, policy: Policy = POLICY) -> Plan:
        """One pass: plan on what is observed, persist the rollout, apply the actions."""
        seen = Observation(self.capacity, tuple(self.pods.values()), OLD, NEW)
        decided = plan(seen, self.rollout, policy, self.now)
        assert plan(seen, self.rollout, policy, self.now) == decided  # idempotent
        self.rollout = decided.rollout
        for action in decided.actions:
            if isinstance(action, Notify):
                notice = UpgradeNotice(action.revision, action.noticed, action.deadline)
                self.pods[action.index] = replace(
                    self.pods[action.index], upgrade_notice=notice, approved=False
                )
            elif isinstance(action, Delete):
                self.pods.pop(action.index)
            else:
                assert isinstance(action, Create)
                self.pods[action.index] = Instance(
                    action.index,
                    action.revision,
                    ready=True,
                    ready_since=self.now,
                    created=self.now,
                )
        return decided

    def approve(self, index: int) -> None:
        self.pods[index] = replace(self.pods[index], approved=True)

    def revisions(self) -> dict[int, str | None]:
        return {i: p.revision for i, p in sorted(self.pods.items())}


def kinds(decided: Plan) -> list[tuple[str, int]]:
    return [(type(a).__name__, a.index) for a in decided.actions]


def test_a_member_is_told_first_and_replaced_at_once_when_it_approves() -> None:
    fleet = Fleet()
    first = fleet.step()
    assert kinds(first) == [("Notify", 0)]
    notice = fleet.pods[0].upgrade_notice
    assert notice == UpgradeNotice(NEW, T0, T0 + DEFERRAL)
    assert "batch 1: telling instance 0 that an upgrade to 1.0.2-a is pending" in first.notes[-1]
    fleet.now += timedelta(minutes=1)
    waiting = fleet.step()
    assert waiting.actions == ()
    assert "batch 1: instance 0 waits for approval (deferral ends in 9m)" in waiting.notes
    assert waiting.requeue_after == 30.0
    fleet.approve(0)
    released = fleet.step()
    assert kinds(released) == [("Delete", 0)]
    assert "batch 1: instance 0 approved the upgrade: replacing" in released.notes
    # The health timeout counts from the release, not from the notice.
    assert released.rollout is not None and released.rollout.batch_since == fleet.now
    assert kinds(fleet.step()) == [("Create", 0)]


def test_without_approval_a_member_is_replaced_exactly_at_its_deadline() -> None:
    fleet = Fleet()
    fleet.step()
    fleet.now = T0 + DEFERRAL - timedelta(seconds=1)
    before = fleet.step()
    assert before.actions == () and before.requeue_after == 1.0
    assert fleet.revisions() == {0: OLD, 1: OLD}
    fleet.now = T0 + DEFERRAL
    due = fleet.step()
    assert kinds(due) == [("Delete", 0)]
    assert "batch 1: deferral of instance 0 ended without approval: replacing" in due.notes


def test_waiting_for_approval_longer_than_the_health_timeout_does_not_fault_the_batch() -> None:
    fleet = Fleet()
    fleet.step()
    for minutes in (4, 6, 9):  # the health timeout is 5 minutes, the deferral 10
        fleet.now = T0 + timedelta(minutes=minutes)
        assert fleet.step().actions == ()
    assert fleet.rollout is not None and fleet.rollout.code == "RollingForward"
    fleet.now = T0 + DEFERRAL
    for _ in range(8):
        fleet.step()
        fleet.now += timedelta(seconds=1)
    # Batch 2 began with its own notice; batch 1 was judged healthy, not faulted.
    assert fleet.rollout is not None and fleet.rollout.batch == 2
    assert fleet.rollout.upgraded == (0,) and fleet.rollout.failed == ()
    assert fleet.revisions() == {0: NEW, 1: OLD}
    assert fleet.pods[1].upgrade_notice is not None


def test_a_restarted_operator_keeps_the_deadline_recorded_on_the_pod() -> None:
    fleet = Fleet()
    fleet.step()
    recorded = fleet.rollout
    # A new process: only the status record and the pods (with their notice) survive.
    fleet = Fleet(rollout=recorded, pods=dict(fleet.pods), now=T0 + timedelta(minutes=7))
    resumed = fleet.step()
    assert resumed.actions == ()
    assert "batch 1: instance 0 waits for approval (deferral ends in 3m)" in resumed.notes
    assert fleet.pods[0].upgrade_notice == UpgradeNotice(NEW, T0, T0 + DEFERRAL)
    fleet.now = T0 + DEFERRAL
    assert kinds(fleet.step()) == [("Delete", 0)]


@pytest.mark.parametrize(
    "notice",
    [
        pytest.param(UpgradeNotice("1.0.1-a", T0, T0), id="another-revision"),
        pytest.param(
            UpgradeNotice(NEW, T0 - timedelta(days=1), T0 - timedelta(hours=23)),
            id="before-the-upgrade-started",
        ),
    ],
)
def test_a_notice_of_another_upgrade_is_no_notice(notice: UpgradeNotice) -> None:
    fleet = Fleet()
    fleet.pods[0] = replace(fleet.pods[0], upgrade_notice=notice, approved=True)
    first = fleet.step()
    assert kinds(first) == [("Notify", 0)]
    assert fleet.pods[0].upgrade_notice == UpgradeNotice(NEW, T0, T0 + DEFERRAL)
    assert not fleet.pods[0].approved


def test_without_deferral_members_are_deleted_at_once() -> None:
    fleet = Fleet()
    assert kinds(fleet.step(Policy())) == [("Delete", 0)]


def test_a_rollback_is_not_deferred() -> None:
    fleet = Fleet()
    back = Rollout(OLD, NEW, T0, code="Faulted", phase="RollingBack", members=(0,), batch_since=T0)
    fleet.pods[0] = Instance(0, NEW, created=T0)
    fleet.rollout = back
    assert kinds(fleet.step()) == [("Delete", 0)]


def test_the_pod_annotations_round_trip_through_observe() -> None:
    told = Notify(3, NEW, T0, T0 + DEFERRAL)
    patch = deferral.notice_patch(told, "42")
    assert patch["metadata"]["resourceVersion"] == "42"
    annotations = {**patch["metadata"]["annotations"], deferral.APPROVED_ANNOTATION: "yes"}
    pod = {
        "metadata": {
            "labels": {"galleon.dev/index": "3", "galleon.dev/revision": OLD},
            "annotations": annotations,
        }
    }
    seen = observe(pod)
    assert seen is not None and seen.approved
    assert seen.upgrade_notice == UpgradeNotice(NEW, T0, T0 + DEFERRAL)
    assert patch["metadata"]["annotations"][deferral.APPROVED_ANNOTATION] is None
    assert '"version": "1.0.2"' in annotations[deferral.PENDING_ANNOTATION]
    unapproved = observe({"metadata": {"labels": pod["metadata"]["labels"]}})
    assert unapproved is not None and not unapproved.approved


def spec(**automatic: object) -> ScaleSetSpec:
    return ScaleSetSpec.model_validate(
        {
            "region": "east",
            "capacity": 2,
            "imageReference": {"imageDefinitionName": "os"},
            "template": {"spec": {"containers": [{"name": "os", "image": "x"}]}},
            "upgradePolicy": {"automaticOSUpgradePolicy": automatic},
        }
    )


@pytest.mark.parametrize(
    ("automatic", "expected"),
    [
        pytest.param({}, None, id="off"),
        pytest.param({"osRollingUpgradeDeferral": True}, timedelta(hours=1), id="default-PT1H"),
        pytest.param(
            {"osRollingUpgradeDeferral": True, "maxOSUpgradeDeferral": "PT20S"},
            timedelta(seconds=20),
            id="PT20S",
        ),
        pytest.param({"maxOSUpgradeDeferral": "PT20S"}, None, id="maximum-without-deferral"),
    ],
)
def test_the_policy_follows_the_spec(automatic: dict[str, object], expected: object) -> None:
    assert policy_for(spec(**automatic), "Platform", False).deferral == expected


def test_the_maximum_deferral_is_bounded() -> None:
    with pytest.raises(ValueError, match="at most 7 days"):
        spec(osRollingUpgradeDeferral=True, maxOSUpgradeDeferral="P8D")


def test_the_members_waiting_for_approval_are_those_told_and_not_yet_due() -> None:
    fleet = Fleet()
    fleet.step()
    assert fleet.rollout is not None
    assert awaiting_approval(fleet.pods.values(), fleet.rollout, T0) == {0: T0 + DEFERRAL}
    assert awaiting_approval(fleet.pods.values(), fleet.rollout, T0 + DEFERRAL) == {}
    fleet.approve(0)
    assert awaiting_approval(fleet.pods.values(), fleet.rollout, T0) == {}


def test_the_preview_shows_the_earliest_batches_as_if_every_instance_approved() -> None:
    fleet = [Instance(i, OLD, ready=True, created=T0) for i in range(3)]
    seen = preview(Observation(3, fleet, OLD, NEW), None, POLICY, T0)
    assert seen.outcome == "Completed"
    assert [(b.number, b.instances, b.earliest) for b in seen.batches] == [
        (1, (0,), T0),
        (2, (1,), T0),
        (3, (2,), T0),
    ]


def test_a_failed_member_is_not_deferred() -> None:
    fleet = Fleet()
    fleet.pods[0] = replace(fleet.pods[0], ready=False, failed=True)
    fleet.rollout = Rollout(OLD, NEW, T0, batch=1, members=(0,), phase_since=T0, batch_since=T0)
    assert kinds(fleet.step()) == [("Delete", 0)]
