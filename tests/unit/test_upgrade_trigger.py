"""When a ScaleSet's upgrade may start, on whose behalf, and how user controls apply
(galleon.core.upgrade_trigger), as tables of named cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from galleon.api.scaleset import ScaleSetSpec
from galleon.core import instances as inst
from galleon.core import reasons
from galleon.core import rollout as ro
from galleon.core.upgrade_trigger import (
    Controls,
    RecordedUpgrade,
    current_revision,
    policy_for,
    record_start,
    trigger,
    upgrade_intent,
)

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PROBE = {"exec": {"command": ["true"]}}


def spec(
    mode: str = "Rolling", version: str = "latest", automatic: bool = True, **extra: Any
) -> ScaleSetSpec:
    container: dict[str, Any] = {"name": "os", "image": "x"}
    if extra.pop("probe", True):
        container["readinessProbe"] = PROBE
    document: dict[str, Any] = {
        "region": "eastus",
        "capacity": 4,
        "imageReference": {"imageDefinitionName": "ubuntu", "version": version},
        "template": {"spec": {"containers": [container]}},
        "upgradePolicy": {
            "mode": mode,
            "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": automatic},
        },
    }
    document.update(extra)
    return ScaleSetSpec.model_validate(document)


@pytest.mark.parametrize(
    ("s", "current", "target", "health", "expected"),
    [
        pytest.param(
            spec(), "1.0.0-h", "1.0.0-h", True, (False, "Platform", reasons.IDLE), id="at-target"
        ),
        pytest.param(
            spec(), None, "1.0.0-h", True, (False, "Platform", reasons.IDLE), id="no-instances"
        ),
        pytest.param(
            spec(),
            "1.0.0-h",
            "1.0.1-h",
            True,
            (True, "Platform", reasons.NEW_VERSION_AVAILABLE),
            id="newer-latest-automatic",
        ),
        pytest.param(
            spec(automatic=False),
            "1.0.0-h",
            "1.0.1-h",
            True,
            (False, "Platform", reasons.UPGRADE_AVAILABLE),
            id="newer-latest-automatic-off",
        ),
        pytest.param(
            spec(),
            "1.0.1-h",
            "1.0.0-h",
            True,
            (False, "Platform", reasons.NO_DOWNGRADE),
            id="latest-never-moves-back",
        ),
        pytest.param(
            spec(),
            "1.0.0-h",
            "1.0.0-k",
            True,
            (True, "User", reasons.MODEL_CHANGED),
            id="model-change-rolling",
        ),
        pytest.param(
            spec(mode="Manual"),
            "1.0.0-h",
            "1.0.0-k",
            True,
            (False, "User", reasons.MANUAL_UPGRADE_PENDING),
            id="model-change-manual",
        ),
        pytest.param(
            spec(version="1.0.0"),
            "1.0.1-h",
            "1.0.0-h",
            True,
            (True, "User", reasons.MODEL_CHANGED),
            id="pinned-downgrade-is-the-users",
        ),
        pytest.param(
            spec(),
            "1.0.0-h",
            "1.0.1-h",
            False,
            (False, "User", reasons.NO_HEALTH_SOURCE),
            id="no-readiness-probe",
        ),
        pytest.param(
            spec(),
            "1.0.0",
            "1.0.1",
            True,
            (True, "Platform", reasons.NEW_VERSION_AVAILABLE),
            id="revisions-without-a-model-hash-are-a-new-version-not-a-model-change",
        ),
    ],
)
def test_trigger(
    s: ScaleSetSpec, current: str | None, target: str, health: bool, expected: tuple[Any, ...]
) -> None:
    found = trigger(s, current, target, health)
    assert (found.may_start, found.started_by, found.reason) == expected
    # Every refusal that is not "nothing to do" says why, with the versions in it.
    if not found.may_start and found.reason != reasons.IDLE:
        assert found.message


@pytest.mark.parametrize(
    ("mode", "started_by", "model_change", "batch", "rollback"),
    [
        pytest.param("Rolling", "Platform", False, 20, True, id="platform-rolls-back-by-default"),
        pytest.param("Rolling", "User", False, 20, False, id="user-follows-rolling-policy"),
        pytest.param("Automatic", "User", True, 100, False, id="automatic-model-change-at-once"),
        pytest.param("Automatic", "Platform", False, 20, True, id="automatic-new-image-in-batches"),
    ],
)
def test_policy_for(
    mode: str, started_by: Any, model_change: bool, batch: int, rollback: bool
) -> None:
    policy = policy_for(spec(mode=mode), started_by, model_change)
    assert (policy.max_batch_percent, policy.rollback) == (batch, rollback)
    assert not policy.in_place


def test_policy_for_says_when_the_os_image_is_updated_in_place() -> None:
    in_place = spec(upgradePolicy={"mode": "Rolling", "osImageUpdate": "InPlaceIfPossible"})
    assert policy_for(in_place, "Platform", False).in_place


def test_current_revision_is_the_majority_then_the_higher_version() -> None:
    fleet = [ro.Instance(0, "1.0.0-h"), ro.Instance(1, "1.0.0-h"), ro.Instance(2, "1.0.1-h")]
    assert current_revision(fleet) == "1.0.0-h"
    assert current_revision(fleet[1:]) == "1.0.1-h"
    assert current_revision([ro.Instance(0, "1.0.0-h", deleting=True)]) is None


def fleet(revision: str, n: int = 4) -> list[ro.Instance]:
    return [ro.Instance(i, revision, ready=True, created=T0) for i in range(n)]


def running(started: datetime = T0, **changes: Any) -> ro.Rollout:
    return ro.Rollout("1.0.0-h", "1.0.1-h", started, **changes)


@pytest.mark.parametrize(
    ("controls", "recorded", "start_requested", "cancel"),
    [
        pytest.param(Controls(), RecordedUpgrade(), False, False, id="no-controls"),
        pytest.param(
            Controls(start_at=T0), RecordedUpgrade(), True, False, id="start-without-history"
        ),
        pytest.param(
            Controls(start_at=T0),
            RecordedUpgrade(running(T0 + timedelta(minutes=1), code="Faulted", phase="Done")),
            False,
            False,
            id="start-older-than-last-upgrade-is-spent",
        ),
        pytest.param(
            Controls(start_at=T0 + timedelta(minutes=2)),
            RecordedUpgrade(running(T0, code="Faulted", phase="Done")),
            True,
            False,
            id="start-retries-a-faulted-upgrade",
        ),
        pytest.param(
            Controls(cancel_at=T0 + timedelta(seconds=5)),
            RecordedUpgrade(running(T0), "Platform"),
            False,
            True,
            id="cancel-the-running-upgrade",
        ),
        pytest.param(
            Controls(cancel_at=T0 - timedelta(seconds=5)),
            RecordedUpgrade(running(T0), "Platform"),
            False,
            False,
            id="cancel-older-than-the-upgrade-is-spent",
        ),
    ],
)
def test_user_controls(
    controls: Controls, recorded: RecordedUpgrade, start_requested: bool, cancel: bool
) -> None:
    now = T0 + timedelta(minutes=5)
    intent = upgrade_intent(
        spec(automatic=False), fleet("1.0.0-h"), "1.0.1-h", recorded, controls, now
    )
    assert intent.start_requested is start_requested
    assert intent.starter == ("User" if start_requested else "Platform")
    was = recorded.rollout.cancel_requested if recorded.rollout else False
    assert (intent.rollout is not None and intent.rollout.cancel_requested and not was) is cancel
    assert intent.last_action == ("Cancel" if cancel else "Start")


def test_upgrade_starts_from_what_the_outdated_instances_run() -> None:
    # After a faulted partial upgrade most instances may already run the target.
    instances = [*fleet("1.0.1-h", 3), ro.Instance(3, "1.0.0-h", ready=True, created=T0)]
    intent = upgrade_intent(spec(), instances, "1.0.1-h", RecordedUpgrade(), Controls(), T0)
    assert (intent.current, intent.source) == ("1.0.1-h", "1.0.0-h")


def test_a_fleet_with_no_instances_still_runs_what_it_completed() -> None:
    done = RecordedUpgrade(running(code="Completed", phase="Done"), "Platform")
    intent = upgrade_intent(spec(), [], "1.0.1-h", done, Controls(), T0)
    assert intent.current == "1.0.1-h"


@pytest.mark.parametrize(
    ("new_started", "expected"),
    [
        pytest.param(T0 + timedelta(minutes=1), (True, "User", "Start"), id="new-rollout"),
        pytest.param(T0, (False, "Platform", "Start"), id="same-rollout-keeps-its-starter"),
    ],
)
def test_record_start(new_started: datetime, expected: tuple[Any, ...]) -> None:
    previous = running(T0)
    recorded = RecordedUpgrade(previous, "Platform", "Start", "2026-06-01T12:00:00Z")
    intent = upgrade_intent(
        spec(),
        fleet("1.0.0-h"),
        "1.0.1-h",
        recorded,
        Controls(start_at=T0 + timedelta(seconds=1)),
        T0,
    )
    start = record_start(intent, previous, running(new_started), T0 + timedelta(minutes=1))
    assert (start.starting, start.started_by, start.last_action) == expected


def test_annotations_that_are_not_times_are_no_controls() -> None:
    controls = Controls.from_annotations(
        {inst.START_ANNOTATION: "now please", inst.CANCEL_ANNOTATION: "2026-06-01T12:00:00Z"}
    )
    assert controls.start_at is None
    assert controls.cancel_at == T0


def test_holds_passed_in_reach_the_planner_and_hold_the_start() -> None:
    quarantine = ro.Hold("VersionQuarantined", "1.0.1 is quarantined until its soak ends")
    intent = upgrade_intent(
        spec(), fleet("1.0.0-h"), "1.0.1-h", RecordedUpgrade(), Controls(), T0, holds=[quarantine]
    )
    assert intent.holds == (quarantine,)
    observed = intent.observation(spec(), fleet("1.0.0-h"), "1.0.1-h")
    assert observed.holds == (quarantine,)
    decided = ro.plan(observed, intent.rollout, intent.policy, T0)
    assert decided.rollout is None and decided.actions == ()
    assert decided.notes == (
        "no upgrade: 1.0.0-h -> 1.0.1-h held by VersionQuarantined: 1.0.1 is quarantined "
        "until its soak ends",
    )
