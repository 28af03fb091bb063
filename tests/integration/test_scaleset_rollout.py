"""ScaleSet instances and batched OS upgrades end to end: the real operator, the
real apiserver with kwok nodes (pods turn Ready by kwok stages), real registries.

Every test builds its world: a region `east` on the session's eastus2 nodes with
two registry replicas, a region `west` on westcentralus with one, and versions
1.0.0 / 1.0.2 / 1.0.3 of one image pushed to a source registry. A watcher thread
polls the instances throughout and records what a user would care about: how
many were unavailable at once, which pod UIDs each index had, and the data disks'
UIDs.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from galleon.kube.resources import ImageVersion
from galleon_testkit.fleets import FleetHarness, Watcher
from galleon_testkit.waiting import stays_true, wait_for

pytestmark = pytest.mark.integration
SCALESET_LABEL = "galleon.dev/scaleset"


def test_latest_rolls_out_in_batches_once_replicated_to_the_region(fleet: FleetHarness) -> None:
    fleet.scaleset("web", 10)
    fleet.wait_fleet("web", "1.0.0", 10)
    status = fleet.status("web")
    assert status["currentVersion"] == "1.0.0" and status["targetVersion"] == "1.0.0"
    assert status["selector"] == "galleon.dev/scaleset=web"
    pods = fleet.pods("web")
    assert sorted(p.metadata.name for p in pods) == sorted(f"web-{i}" for i in range(10))
    images = {p.spec.containers[0].image for p in pods}
    digest = fleet.digest("1.0.0")
    hosts = {r.host for r in fleet.world.regions[fleet.east]}
    # Spread over both replicas of the region, by digest.
    assert {i.split("/", 1)[0] for i in images} == hosts
    assert all(i.endswith("@" + digest) for i in images)
    assert all(p.spec.nodeSelector == {"topology.kubernetes.io/region": "eastus2"} for p in pods)
    disks_before = fleet.claims("web")
    assert len(disks_before) == 10

    with Watcher(fleet, "web", 10) as watcher:
        # Replicated elsewhere only: nothing changes, status says what is coming.
        fleet.publish("1.0.2", [fleet.west])
        wait_for(
            lambda: fleet.status("web").get("waitingForReplication") == "1.0.2",
            timeout=30,
            description="1.0.2 shown as waiting for replication",
        )
        stays_true(
            lambda: all(
                p.metadata.labels["galleon.dev/version"] == "1.0.0" for p in fleet.pods("web")
            ),
            duration=4,
            description="no instance replaced before 1.0.2 reaches eastus2",
        )
        # Now it reaches the region: batches of 2.
        fleet.publish("1.0.2", [fleet.west, fleet.east])
        status = fleet.wait_upgrade("web", "Completed")
        fleet.wait_fleet("web", "1.0.2", 10)
    upgrade = status["rollingUpgrade"]
    assert upgrade["fromVersion"] == "1.0.0" and upgrade["toVersion"] == "1.0.2"
    assert upgrade["startedBy"] == "Platform"
    assert upgrade["progress"]["successfulInstanceCount"] == 10
    assert upgrade["currentBatch"] == 5 and upgrade["totalBatches"] == 5
    assert status["upgradeHistory"][0]["result"] == "Completed"
    assert watcher.samples > 20
    assert 1 <= watcher.max_unavailable <= 2, watcher.max_unavailable
    # Each index got exactly one new pod, and kept its data disk.
    for index in range(10):
        assert len(watcher.uids[(index, "1.0.2")]) == 1, watcher.uids
    assert all(len(uids) == 1 for uids in watcher.claims.values()), watcher.claims
    assert fleet.claims("web") == disks_before
    assert len(fleet.events("web", "BatchStarted")) == 5
    conditions = {c["type"]: c["status"] for c in fleet.status("web")["conditions"]}
    assert conditions["Ready"] == "True" and conditions["Upgrading"] == "False"


def test_a_version_that_never_gets_healthy_faults_and_is_rolled_back(fleet: FleetHarness) -> None:
    broken = fleet.digest("1.0.3")
    fleet.scaleset(
        "db",
        5,
        annotations={"galleon.test/never-ready-images": broken},
    )
    fleet.wait_fleet("db", "1.0.0", 5)
    disks = fleet.claims("db")
    fleet.publish("1.0.3", [fleet.east])
    status = fleet.wait_upgrade("db", "Faulted", timeout=120)
    upgrade = status["rollingUpgrade"]
    assert upgrade["error"]["code"] == (
        "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade"
    )
    assert upgrade["failedInstances"] == [0] and upgrade["rolledBackInstances"] == [0]
    fleet.wait_fleet("db", "1.0.0", 5)
    entry = (fleet.status("db").get("upgradeHistory") or [{}])[0].get("rollbackInfo") or {}
    history = fleet.status("db")["upgradeHistory"][0]
    assert history["result"] == "Faulted" and history["toVersion"] == "1.0.3"
    assert entry["successfullyRolledbackInstanceCount"] == 1
    assert fleet.claims("db") == disks
    # A faulted version is not retried by itself.
    stays_true(
        lambda: (
            all(p.metadata.labels["galleon.dev/version"] == "1.0.0" for p in fleet.pods("db"))
            and fleet.status("db")["rollingUpgrade"]["runningStatus"]["code"] == "Faulted"
        ),
        duration=10,
        description="faulted 1.0.3 stays rolled back",
    )
    conditions = {c["type"]: c for c in fleet.status("db")["conditions"]}
    assert conditions["Degraded"]["status"] == "True"
    assert conditions["Stalled"]["status"] == "True"
    assert fleet.events("db", "RollingUpgradeFaulted")


def test_too_many_unhealthy_instances_stop_the_upgrade_before_a_batch(fleet: FleetHarness) -> None:
    fleet.scaleset("api", 5)
    fleet.wait_fleet("api", "1.0.0", 5)
    # A pod that is not Ready counts as Initializing until upgradedInstanceHealthTimeout
    # (PT8S here) after its creation, then as Unhealthy: let the fleet age past it.
    time.sleep(8)
    for index in (3, 4):  # 2 of 5 unhealthy: 40% > 20%
        fleet.kube.patch(
            Pod.Status,
            f"api-{index}",
            {"status": {"conditions": [{"type": "Ready", "status": "False"}]}},
            namespace=fleet.namespace,
            patch_type=PatchType.STRATEGIC,
        )
    fleet.publish("1.0.2", [fleet.east])
    status = fleet.wait_upgrade("api", "Faulted")
    error = status["rollingUpgrade"]["error"]
    assert error["code"] == "MaxUnhealthyInstancePercentExceededBeforeRollingUpgrade"
    assert "2 of 5" in error["message"]
    assert all(p.metadata.labels["galleon.dev/version"] == "1.0.0" for p in fleet.pods("api"))


def test_pause_resume_and_cancel(fleet: FleetHarness) -> None:
    fleet.scaleset("app", 10, annotations={"galleon.test/ready-delay": "2s"})
    fleet.wait_fleet("app", "1.0.0", 10)
    fleet.publish("1.0.2", [fleet.east])
    wait_for(
        lambda: (fleet.status("app").get("rollingUpgrade") or {}).get("currentBatch") == 1,
        timeout=60,
        description="batch 1 running",
    )
    fleet.patch("app", {"spec": {"paused": True}})

    def batch() -> int:
        return int(fleet.status("app")["rollingUpgrade"]["currentBatch"])

    held = wait_for(
        lambda: fleet.status("app")["rollingUpgrade"]["phase"] == "Pausing" and batch(),
        timeout=60,
        description="the running batch to finish",
    )
    stays_true(lambda: batch() == held, duration=6, description="no new batch while paused")
    conditions = {c["type"]: c for c in fleet.status("app")["conditions"]}
    assert conditions["Ready"]["reason"] == "Paused"
    fleet.patch("app", {"spec": {"paused": False}})
    wait_for(lambda: batch() > held, timeout=60, description="resumed after the pause")
    fleet.patch(
        "app",
        {
            "metadata": {
                "annotations": {
                    "galleon.dev/cancel-upgrade": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                }
            }
        },
    )
    status = fleet.wait_upgrade("app", "Cancelled")
    upgrade = status["rollingUpgrade"]
    assert upgrade["runningStatus"]["lastAction"] == "Cancel"
    assert upgrade["progress"]["successfulInstanceCount"] < 10
    versions = [p.metadata.labels["galleon.dev/version"] for p in fleet.pods("app")]
    assert "1.0.0" in versions and "1.0.2" in versions
    assert status["upgradeHistory"][0]["result"] == "Cancelled"
    # A cancelled upgrade is not restarted by itself; a start annotation restarts it.
    stays_true(
        lambda: fleet.status("app")["rollingUpgrade"]["runningStatus"]["code"] == "Cancelled",
        duration=4,
        description="cancelled upgrade stays cancelled",
    )
    time.sleep(1.1)
    fleet.patch(
        "app",
        {
            "metadata": {
                "annotations": {
                    "galleon.dev/start-upgrade": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                }
            }
        },
    )
    status = fleet.wait_upgrade("app", "Completed")
    assert status["rollingUpgrade"]["startedBy"] == "User"
    fleet.wait_fleet("app", "1.0.2", 10)


def test_an_operator_killed_mid_upgrade_resumes_within_the_limits(
    fleet: FleetHarness, operator: Any
) -> None:
    fleet.scaleset("svc", 10, annotations={"galleon.test/ready-delay": "2s"})
    fleet.wait_fleet("svc", "1.0.0", 10)
    with Watcher(fleet, "svc", 10) as watcher:
        fleet.publish("1.0.2", [fleet.east])
        wait_for(
            lambda: (fleet.status("svc").get("rollingUpgrade") or {}).get("currentBatch") == 2,
            timeout=60,
            description="batch 2 running",
        )
        operator.kill()
        time.sleep(3)
        operator.start()
        fleet.wait_upgrade("svc", "Completed")
        fleet.wait_fleet("svc", "1.0.2", 10)
    assert watcher.max_unavailable <= 2, watcher.max_unavailable
    for index in range(10):
        assert len(watcher.uids[(index, "1.0.2")]) == 1, watcher.uids
    assert all(len(uids) == 1 for uids in watcher.claims.values())


def test_scale_out_and_in_with_the_disk_retention_rule(fleet: FleetHarness) -> None:
    fleet.scaleset(
        "pool",
        3,
        persistentVolumeClaimRetentionPolicy={"whenScaled": "Delete", "whenDeleted": "Retain"},
    )
    fleet.wait_fleet("pool", "1.0.0", 3)
    fleet.patch("pool", {"spec": {"capacity": 5}})
    fleet.wait_fleet("pool", "1.0.0", 5)
    assert sorted(fleet.claims("pool")) == [f"data-pool-{i}" for i in range(5)]
    kept = fleet.claims("pool")
    fleet.patch("pool", {"spec": {"capacity": 2}})
    fleet.wait_fleet("pool", "1.0.0", 2)
    wait_for(
        lambda: sorted(fleet.claims("pool")) == ["data-pool-0", "data-pool-1"],
        timeout=30,
        description="disks of removed instances deleted (whenScaled: Delete)",
    )
    assert {k: v for k, v in fleet.claims("pool").items()} == {
        k: kept[k] for k in ("data-pool-0", "data-pool-1")
    }
    assert sorted(p.metadata.name for p in fleet.pods("pool")) == ["pool-0", "pool-1"]
    # Counts alone are written within the status' coalescing window (2 s).
    wait_for(
        lambda: (s := fleet.status("pool"))["replicas"] == 2 and s["readyReplicas"] == 2,
        timeout=30,
        description="2 instances, 2 ready, in the status",
    )


def test_a_pinned_version_waits_for_its_region_and_bad_references_are_reported(
    fleet: FleetHarness,
) -> None:
    fleet.publish("1.0.2", [fleet.west])
    fleet.scaleset("pin", 2, imageReference={"imageDefinitionName": "os", "version": "1.0.2"})
    wait_for(
        lambda: (
            {c["type"]: c.get("reason") for c in fleet.status("pin").get("conditions") or []}.get(
                "Ready"
            )
            == "VersionNotReplicated"
        ),
        timeout=30,
        description="pinned version waits for replication",
    )
    assert fleet.pods("pin") == []
    fleet.publish("1.0.2", [fleet.west, fleet.east])
    fleet.wait_fleet("pin", "1.0.2", 2)
    fleet.patch("pin", {"spec": {"imageReference": {"version": "9.9.9"}}})
    wait_for(
        lambda: (
            {c["type"]: c.get("reason") for c in fleet.status("pin").get("conditions") or []}.get(
                "Stalled"
            )
            == "VersionNotFound"
        ),
        timeout=30,
        description="a version that does not exist is reported",
    )
    assert len(fleet.pods("pin")) == 2  # nothing lost
    assert fleet.kube.get(ImageVersion, "os-1-0-2", namespace=fleet.namespace)
