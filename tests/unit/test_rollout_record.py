"""The batch start, through the ScaleSet's status and back: what the planner records
is what a restarted operator reads (`status.rollingUpgrade.batchStartTime`), and a
record of an older galleon, without it, counts the batch from `phaseSince`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from galleon.api.scaleset import ScaleSetSpec, ScaleSetStatus
from galleon.controllers.scaleset.snapshot import load_rollout
from galleon.core import reasons
from galleon.core import rollout as ro
from galleon.core.scaleset_status import ScaleSetFacts, scaleset_status
from galleon.core.upgrade_trigger import Controls, RecordedUpgrade, record_start, upgrade_intent
from galleon.core.versions import Resolution

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
OLD, NEW = "1.0.0-h", "1.0.1-h"
SPEC = ScaleSetSpec.model_validate(
    {
        "region": "eastus",
        "capacity": 10,
        "imageReference": {"imageDefinitionName": "ubuntu"},
        "template": {
            "spec": {"containers": [{"name": "os", "readinessProbe": {"exec": {"command": ["t"]}}}]}
        },
    }
)


def fleet() -> list[ro.Instance]:
    """Instances 2-9 healthy on OLD; 0 and 1 (the batch) missing."""
    hour_ago = T0 - timedelta(hours=1)
    return [
        ro.Instance(i, OLD, ready=True, ready_since=hour_ago, created=hour_ago)
        for i in range(2, 10)
    ]


def status_of(rollout: ro.Rollout, now: datetime = T0) -> dict[str, Any]:
    instances = fleet()
    recorded = RecordedUpgrade(rollout, "User")
    intent = upgrade_intent(SPEC, instances, NEW, recorded, Controls(), now)
    return scaleset_status(
        ScaleSetFacts(
            name="web",
            spec=SPEC,
            generation=1,
            recorded={},
            resolution=Resolution("1.0.1", None, reasons.LATEST_RESOLVED, ""),
            target=NEW,
            instances=instances,
            rollout=rollout,
            policy=intent.policy,
            intent=intent,
            start=record_start(intent, rollout, rollout, now),
            now=now,
        )
    )


BATCH = ro.Rollout(
    OLD,
    NEW,
    T0 - timedelta(minutes=10),
    batch=1,
    members=(0, 1),
    phase_since=T0 - timedelta(minutes=1),
    batch_since=T0 - timedelta(minutes=2),
)


def test_the_batch_start_is_written_as_rfc3339_and_read_back() -> None:
    status = status_of(BATCH)
    assert status["rollingUpgrade"]["batchStartTime"] == "2026-06-01T11:58:00Z"
    assert ScaleSetStatus.model_validate(status).rolling_upgrade is not None  # the CRD's shape
    loaded = load_rollout(status, T0)
    assert loaded is not None and loaded.batch_since == BATCH.batch_since
    assert loaded.batch_start == T0 - timedelta(minutes=2)


def test_a_record_without_a_batch_start_counts_from_phase_since() -> None:
    status = status_of(BATCH)
    del status["rollingUpgrade"]["batchStartTime"]  # as an older galleon wrote it
    loaded = load_rollout(status, T0)
    assert loaded is not None and loaded.batch_since is None
    assert loaded.batch_start == T0 - timedelta(minutes=1)


@pytest.mark.parametrize(
    ("batch_start_time", "phase", "at", "judged"),
    [
        pytest.param(
            "2026-06-01T11:58:00Z", "Replacing", T0 + timedelta(minutes=2), False, id="3m-in"
        ),
        pytest.param(
            "2026-06-01T11:58:00Z", "Replacing", T0 + timedelta(minutes=3), True, id="5m-in"
        ),
        pytest.param(None, "Replacing", T0 + timedelta(minutes=3), False, id="legacy-4m-in"),
        pytest.param(None, "Replacing", T0 + timedelta(minutes=4), True, id="legacy-5m-in"),
        pytest.param(None, "Waiting", T0 + timedelta(minutes=4), True, id="legacy-waiting-5m-in"),
    ],
)
def test_a_batch_whose_pods_never_come_is_judged_at_the_recorded_start_plus_the_timeout(
    batch_start_time: str | None, phase: str, at: datetime, judged: bool
) -> None:
    """Members 0 and 1 never come back (their creates are refused); the batch began at
    11:58 (or, recorded by an older galleon, its phase at 11:59): it is judged, and
    faults, 5 minutes after that, not later."""
    status = status_of(BATCH)
    status["rollingUpgrade"]["batchStartTime"] = batch_start_time
    status["rollingUpgrade"]["phase"] = phase
    recorded = load_rollout(status, at)
    assert recorded is not None
    decided = ro.plan(ro.Observation(10, fleet(), OLD, NEW), recorded, ro.Policy(), at)
    assert decided.rollout is not None
    if judged:
        assert (decided.rollout.code, decided.rollout.phase) == ("Faulted", "RollingBack")
        assert decided.rollout.failed == (0, 1)
        assert decided.actions == (ro.Create(0, OLD), ro.Create(1, OLD))
    else:
        assert (decided.rollout.code, decided.rollout.phase) == ("RollingForward", phase)
        assert decided.actions == (ro.Create(0, NEW), ro.Create(1, NEW))
    # Recorded next: the batch start it counted from (pinned, for an older record), or
    # the rollback's, which starts now.
    again = load_rollout(status_of(decided.rollout, at), at)
    assert again is not None
    assert again.batch_since == (at if judged else recorded.batch_start)
