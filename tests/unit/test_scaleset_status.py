"""A ScaleSet's status from one pass's facts (galleon.core.scaleset_status): each
condition function against named situations, and the whole status's shape."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from galleon.api.scaleset import ScaleSetSpec
from galleon.core import reasons
from galleon.core import rollout as ro
from galleon.core.scaleset_status import (
    ScaleSetFacts,
    refused_status,
    scaleset_status,
    set_degraded,
    set_ready,
    set_upgrading,
)
from galleon.core.upgrade_trigger import Controls, RecordedUpgrade, record_start, upgrade_intent
from galleon.core.versions import Resolution

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
OLD, NEW = "1.0.0-h", "1.0.1-h"


def spec(**extra: Any) -> ScaleSetSpec:
    document: dict[str, Any] = {
        "region": "eastus",
        "capacity": 4,
        "imageReference": {"imageDefinitionName": "ubuntu"},
        "template": {
            "spec": {"containers": [{"name": "os", "readinessProbe": {"exec": {"command": ["t"]}}}]}
        },
        "upgradePolicy": {
            "mode": "Rolling",
            "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True},
        },
    }
    document.update(extra)
    return ScaleSetSpec.model_validate(document)


def healthy(index: int, revision: str = OLD) -> ro.Instance:
    return ro.Instance(index, revision, ready=True, ready_since=T0 - timedelta(hours=1))


def facts(
    instances: list[ro.Instance] | None = None,
    rollout: ro.Rollout | None = None,
    target: str | None = OLD,
    resolution: Resolution | None = None,
    s: ScaleSetSpec | None = None,
    missing: tuple[str, ...] = (),
) -> ScaleSetFacts:
    s = s or spec()
    instances = [healthy(i) for i in range(4)] if instances is None else instances
    recorded = RecordedUpgrade(rollout, "Platform") if rollout else RecordedUpgrade()
    intent = upgrade_intent(s, instances, target, recorded, Controls(), T0)
    return ScaleSetFacts(
        name="web",
        spec=s,
        generation=3,
        recorded={},
        resolution=resolution or Resolution("1.0.0", None, reasons.LATEST_RESOLVED, ""),
        target=target,
        instances=instances,
        rollout=rollout,
        policy=intent.policy,
        intent=intent,
        start=record_start(intent, rollout, rollout, T0),
        now=T0,
        missing_images=missing,
    )


ROLLING = ro.Rollout(OLD, NEW, T0, batch=2, members=(2,), upgraded=(0, 1))
FAULTED = ro.Rollout(
    OLD,
    NEW,
    T0,
    code="Faulted",
    phase="Done",
    error_code=reasons.UNHEALTHY_UPGRADED,
    error_message="2 of 2 upgraded instances unhealthy",
)


@pytest.mark.parametrize(
    ("f", "upgrading", "ready", "degraded"),
    [
        pytest.param(
            facts(),
            ("False", reasons.UP_TO_DATE),
            ("True", reasons.INSTANCES_HEALTHY, "False", "False"),
            ("False", reasons.INSTANCES_HEALTHY),
            id="steady-and-healthy",
        ),
        pytest.param(
            facts([healthy(0), healthy(1), healthy(2)]),
            ("False", reasons.UP_TO_DATE),
            ("False", reasons.INSTANCES_NOT_HEALTHY, "True", "False"),
            ("True", reasons.INSTANCES_UNHEALTHY),
            id="one-instance-missing",
        ),
        pytest.param(
            facts([healthy(0, NEW), healthy(1, NEW), healthy(3)], ROLLING, target=NEW),
            ("True", reasons.ROLLING_FORWARD),
            ("False", reasons.ROLLING_FORWARD, "True", "False"),
            ("False", reasons.INSTANCES_HEALTHY),
            id="batch-member-missing-is-not-degraded",
        ),
        pytest.param(
            facts([healthy(i) for i in range(4)], ROLLING, target=NEW, s=spec(paused=True)),
            ("True", reasons.ROLLING_FORWARD),
            ("False", reasons.PAUSED, "False", "False"),
            ("False", reasons.INSTANCES_HEALTHY),
            id="paused-is-neither-ready-nor-reconciling",
        ),
        pytest.param(
            facts(rollout=replace(ROLLING, phase="RollingBack", members=(0, 1)), target=NEW),
            ("True", reasons.ROLLING_BACK),
            ("False", reasons.ROLLING_BACK, "True", "False"),
            ("False", reasons.INSTANCES_HEALTHY),
            id="rolling-back",
        ),
        pytest.param(
            facts(rollout=FAULTED, target=NEW),
            ("False", reasons.UPGRADE_FAULTED),
            ("False", reasons.UPGRADE_FAULTED, "False", "True"),
            ("True", reasons.UNHEALTHY_UPGRADED),
            id="fault-stalls-while-targeted",
        ),
        pytest.param(
            facts(rollout=FAULTED, target="1.0.2-h"),
            ("False", reasons.UP_TO_DATE),
            ("True", reasons.INSTANCES_HEALTHY, "False", "False"),
            ("False", reasons.INSTANCES_HEALTHY),
            id="moving-the-spec-on-clears-the-fault",
        ),
        pytest.param(
            facts(
                target=None,
                resolution=Resolution(None, None, reasons.VERSION_NOT_FOUND, "no 9.9.9"),
            ),
            ("False", reasons.UP_TO_DATE),
            ("False", reasons.VERSION_NOT_FOUND, "False", "True"),
            ("False", reasons.INSTANCES_HEALTHY),
            id="missing-version-stalls",
        ),
        pytest.param(
            facts(target=None, resolution=Resolution("1.0.1", None, reasons.LATEST_RESOLVED, "")),
            ("False", reasons.UP_TO_DATE),
            ("False", reasons.NO_COPY_IN_REGION, "True", "False"),
            ("False", reasons.INSTANCES_HEALTHY),
            id="version-without-a-copy-waits",
        ),
        pytest.param(
            facts(missing=("1.0.0",)),
            ("False", reasons.UP_TO_DATE),
            ("False", reasons.NO_COPY_IN_REGION, "True", "False"),
            ("False", reasons.INSTANCES_HEALTHY),
            id="instance-to-create-has-no-copy",
        ),
    ],
)
def test_conditions(
    f: ScaleSetFacts,
    upgrading: tuple[str, str],
    ready: tuple[str, str, str, str],
    degraded: tuple[str, str],
) -> None:
    up = set_upgrading(f)
    trio = set_ready(f, up)
    assert up[1:3] == upgrading
    assert [u[0] for u in trio] == [reasons.READY, reasons.RECONCILING, reasons.STALLED]
    assert (trio[0][1], trio[0][2], trio[1][1], trio[2][1]) == ready
    assert set_degraded(f)[1:3] == degraded


def test_messages_carry_the_numbers() -> None:
    f = facts([healthy(0), healthy(1), healthy(2)])
    assert set_ready(f, set_upgrading(f))[0][3] == "3 of 4 instances healthy"
    assert set_degraded(f)[3] == "1 of 4 instances unhealthy or missing"
    rolling = facts([healthy(0, NEW), healthy(1, NEW), healthy(3)], ROLLING, target=NEW)
    assert set_upgrading(rolling)[3] == "upgrading 1.0.0 to 1.0.1: batch 2, 2 of 4 upgraded"


def test_whole_status_in_order_with_history_once_done() -> None:
    done = ro.Rollout(
        OLD, NEW, T0, code="Completed", phase="Done", upgraded=(0, 1, 2, 3), phase_since=T0
    )
    status = scaleset_status(facts([healthy(i, NEW) for i in range(4)], done, target=NEW))
    assert list(status)[:1] == ["observedGeneration"]
    assert list(status)[-1] == "conditions"
    assert status["replicas"] == status["readyReplicas"] == 4
    assert status["instancesByVersion"] == [{"version": "1.0.1", "instances": 4, "healthy": 4}]
    assert status["rollingUpgrade"]["progress"]["successfulInstanceCount"] == 4
    assert [h["result"] for h in status["upgradeHistory"]] == ["Completed"]
    again = scaleset_status(
        replace(facts([healthy(i, NEW) for i in range(4)], done, target=NEW), recorded=status)
    )
    assert len(again["upgradeHistory"]) == 1  # entered once, not once per pass


def test_refused_status_stalls_without_touching_counters() -> None:
    status = refused_status({}, 2, reasons.REGION_NOT_FOUND, "Region nowhere does not exist", T0)
    assert set(status) == {"observedGeneration", "conditions"}
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type[reasons.STALLED]["status"] == "True"
    assert by_type[reasons.UPGRADING]["reason"] == reasons.REGION_NOT_FOUND


def conditions_of(f: ScaleSetFacts) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in scaleset_status(f)["conditions"]}


def test_what_the_apply_could_not_do_is_said_with_its_reason_and_stalls() -> None:
    refused = (reasons.CREATE_REFUSED, "pod web-3: the apiserver refused it (422): port 70000")
    f = facts([healthy(0), healthy(1), healthy(2)])
    f = replace(f, problems=(refused,))
    found = conditions_of(f)
    assert found[reasons.READY]["reason"] == reasons.CREATE_REFUSED
    assert found[reasons.STALLED]["status"] == "True"
    assert "70000" in found[reasons.READY]["message"]
    degraded = found[reasons.DEGRADED]
    assert degraded["reason"] == reasons.CREATE_REFUSED
    assert degraded["message"].startswith("1 of 4 instances missing: pod web-3")


def test_a_fleet_that_was_never_created_says_why_not_a_bare_count() -> None:
    waiting = Resolution(None, None, reasons.VERSION_NOT_REPLICATED, "1.0.2 is not in east yet")
    found = conditions_of(facts([], target=None, resolution=waiting))
    assert found[reasons.READY]["reason"] == reasons.VERSION_NOT_REPLICATED
    degraded = found[reasons.DEGRADED]
    assert degraded["reason"] == reasons.VERSION_NOT_REPLICATED
    assert degraded["message"] == "4 of 4 instances missing: 1.0.2 is not in east yet"


def test_an_ignored_control_annotation_is_said_in_upgrading() -> None:
    s = spec()
    instances = [healthy(i) for i in range(4)]
    controls = Controls.from_annotations({"galleon.dev/start-upgrade": "2026-01-01T00:00:00"})
    intent = upgrade_intent(s, instances, OLD, RecordedUpgrade(), controls, T0)
    f = replace(facts(), intent=intent)
    message = conditions_of(f)[reasons.UPGRADING]["message"]
    assert "galleon.dev/start-upgrade ignored" in message and "zone" in message, message


WINDOW = ro.Hold(
    "OutsideMaintenanceWindow",
    "outside maintenance window: next opens 2026-06-01T17:00:00+02:00 (in 3h)",
    T0 + timedelta(hours=3),
)
BETWEEN_BATCHES = replace(ROLLING, phase="Pausing", members=(), upgraded=(0, 1, 2))


def held(f: ScaleSetFacts, *holds: ro.Hold) -> ScaleSetFacts:
    """`f` as a pass whose upgrade intent carries `holds`."""
    return replace(f, intent=replace(f.intent, holds=holds))


@pytest.mark.parametrize(
    ("f", "upgrading", "ready"),
    [
        pytest.param(
            held(facts(target=NEW), WINDOW),
            ("False", "OutsideMaintenanceWindow", f"the upgrade to 1.0.1 waits: {WINDOW.message}"),
            ("True", reasons.INSTANCES_HEALTHY, "False"),
            id="an-upgrade-that-waits-to-start",
        ),
        pytest.param(
            held(
                facts([healthy(i, NEW) for i in range(3)] + [healthy(3)], BETWEEN_BATCHES, NEW),
                WINDOW,
            ),
            (
                "True",
                reasons.ROLLING_FORWARD,
                f"upgrading 1.0.0 to 1.0.1: batch 2, 3 of 4 upgraded; the next batch waits: "
                f"{WINDOW.message}",
            ),
            ("False", "OutsideMaintenanceWindow", "False"),
            id="held-between-batches-is-not-reconciling",
        ),
        pytest.param(
            held(facts([healthy(0, NEW), healthy(1, NEW), healthy(3)], ROLLING, NEW), WINDOW),
            (
                "True",
                reasons.ROLLING_FORWARD,
                f"upgrading 1.0.0 to 1.0.1: batch 2, 2 of 4 upgraded; the next batch waits: "
                f"{WINDOW.message}",
            ),
            ("False", reasons.ROLLING_FORWARD, "True"),
            id="a-held-upgrade-whose-batch-runs-is-reconciling",
        ),
        pytest.param(
            held(facts(target=OLD), WINDOW),
            ("False", reasons.UP_TO_DATE, "no upgrade running"),
            ("True", reasons.INSTANCES_HEALTHY, "False"),
            id="a-hold-with-nothing-to-upgrade-is-not-said",
        ),
    ],
)
def test_holds_are_said_where_they_bite(
    f: ScaleSetFacts, upgrading: tuple[str, str, str], ready: tuple[str, str, str]
) -> None:
    found = set_upgrading(f)
    assert found[1:] == upgrading
    ready_, reconciling, _stalled = set_ready(f, found)
    assert (ready_[1], ready_[2], reconciling[1]) == ready
