"""Upgrade deferral end to end: the real operator and API server (kwok nodes), real
registries. A ScaleSet of two instances with `osRollingUpgradeDeferral` and a
maximum deferral of 20 seconds gets a new version: the first batch's pod is told
(`galleon.dev/upgrade-pending`, with the version and the deadline) and stays until
the test approves it (`galleon.dev/upgrade-approved`), then it is replaced at once;
the second batch's pod is never approved and is replaced at its deadline, not
before. Every wait is a bounded poll.
"""

from __future__ import annotations

import contextlib
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from galleon_testkit.fleets import FleetHarness
from galleon_testkit.waiting import stays_true, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.fleet(versions=("1.0.0", "1.0.2"))]
PENDING = "galleon.dev/upgrade-pending"
APPROVED = "galleon.dev/upgrade-approved"
DEFERRAL = timedelta(seconds=20)


def deferring_template() -> dict[str, Any]:
    """The harness's instance model, plus the notice as a file (downward API)."""
    return {
        "metadata": {"labels": {"app": "defer"}, "annotations": {"galleon.test/ready-delay": "1s"}},
        "spec": {
            "containers": [
                {
                    "name": "os",
                    "image": "set-by-galleon",
                    "readinessProbe": {"httpGet": {"path": "/", "port": 8080}},
                    "volumeMounts": [{"name": "upgrade", "mountPath": "/etc/upgrade"}],
                }
            ],
            "volumes": [
                {
                    "name": "upgrade",
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "pending",
                                "fieldRef": {"fieldPath": f"metadata.annotations['{PENDING}']"},
                            }
                        ]
                    },
                }
            ],
        },
    }


def pod(fleet: FleetHarness, index: int) -> Pod | None:
    with contextlib.suppress(ApiError):
        return fleet.kube.get(Pod, f"defer-{index}", namespace=fleet.namespace)
    return None


def notice(fleet: FleetHarness, index: int) -> dict[str, Any] | None:
    """The pending-upgrade notice on instance `index`'s pod, with its pod's UID."""
    found = pod(fleet, index)
    text = ((found.metadata.annotations or {}) if found else {}).get(PENDING)
    if not text:
        return None
    return {**json.loads(text), "uid": found.metadata.uid}


def same_pod(fleet: FleetHarness, index: int, uid: str) -> bool:
    found = pod(fleet, index)
    return found is not None and found.metadata.uid == uid and not found.metadata.deletionTimestamp


def replaced(fleet: FleetHarness, index: int, uid: str) -> bool:
    found = pod(fleet, index)
    return (
        found is not None
        and found.metadata.uid != uid
        and found.metadata.labels.get("galleon.dev/version") == "1.0.2"
    )


def test_deferral_waits_for_approval_and_for_the_maximum(fleet: FleetHarness) -> None:
    fleet.scaleset(
        "defer",
        2,
        template=deferring_template(),
        upgradePolicy={
            "mode": "Rolling",
            "automaticOSUpgradePolicy": {
                "enableAutomaticOSUpgrade": True,
                "osRollingUpgradeDeferral": True,
                "maxOSUpgradeDeferral": "PT20S",
            },
            "rollingUpgradePolicy": {"upgradedInstanceHealthTimeout": "PT8S"},
        },
    )
    fleet.wait_fleet("defer", "1.0.0", 2)
    fleet.publish("1.0.2", [fleet.east])

    # Batch 1: instance 0 is told, with the version and a deadline 20 s after the notice.
    first = wait_for(lambda: notice(fleet, 0), timeout=60, description="defer-0 told")
    noticed, deadline = (
        datetime.fromisoformat(first["noticeTime"]),
        datetime.fromisoformat(first["deadline"]),
    )
    assert first["version"] == "1.0.2" and deadline - noticed == DEFERRAL
    assert notice(fleet, 1) is None
    # Past the health timeout (8 s): the wait for approval neither replaces nor faults.
    stays_true(
        lambda: same_pod(fleet, 0, first["uid"]),
        duration=10,
        description="defer-0 kept while it has not approved",
    )
    status = fleet.status("defer")
    assert status["rollingUpgrade"]["runningStatus"]["code"] == "RollingForward"
    upgrading = {c["type"]: c for c in status["conditions"]}["Upgrading"]
    assert f"instance 0 waits for approval until {first['deadline']}" in upgrading["message"]
    approved_at = time.monotonic()
    fleet.kube.patch(
        Pod,
        "defer-0",
        {"metadata": {"annotations": {APPROVED: "true"}}},
        namespace=fleet.namespace,
        patch_type=PatchType.MERGE,
    )
    wait_for(
        lambda: replaced(fleet, 0, first["uid"]),
        timeout=10,
        description="defer-0 replaced once approved",
    )
    assert time.monotonic() - approved_at < 10
    assert datetime.now(UTC) < deadline, "replaced by the approval, not by the deadline"

    # Batch 2: instance 1 is told and never approves: replaced at its deadline.
    second = wait_for(lambda: notice(fleet, 1), timeout=60, description="defer-1 told")
    deadline = datetime.fromisoformat(second["deadline"])
    left = (deadline - datetime.now(UTC)).total_seconds()
    assert 10 < left <= DEFERRAL.total_seconds(), left
    stays_true(
        lambda: same_pod(fleet, 1, second["uid"]),
        duration=left - 1.5,
        description="defer-1 kept until its deadline",
    )
    wait_for(
        lambda: replaced(fleet, 1, second["uid"]),
        timeout=20,
        description="defer-1 replaced at its deadline",
    )
    late = (datetime.now(UTC) - deadline).total_seconds()
    assert late < 15, late
    status = fleet.wait_upgrade("defer", "Completed", timeout=60)
    upgrade = status["rollingUpgrade"]
    assert upgrade["failedInstances"] == [] and upgrade["upgradedInstances"] == [0, 1]
    fleet.wait_fleet("defer", "1.0.2", 2)
