# mypy: disable-error-code="union-attr,index"
"""OS upgrades on a real node: containerd pulls each instance's image from the registry
replica galleon assigned it, the image really runs and answers over its pod IP, its
readiness probe is real, its data disk is a real folder on the node, and an extension
runs again on every new OS image.

Every test builds its world (`galleon_testkit.realfleet`): a region on the session's
real node with two registry replicas that log every request, and runnable OS images
(busybox and a health endpoint, `galleon_testkit.osimages`) published through the
gallery. The kwok tier (test_scaleset_rollout.py) stays for scale and fault injection.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.resources.core_v1 import Node

from galleon_testkit.realfleet import RealFleet
from galleon_testkit.realnode import RealNode
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.realnode]


@pytest.fixture
def fleet(
    kube: Client,
    namespace: str,
    registry_factory: Callable[..., list[Registry]],
    real_volumes: RealNode,
    operator: Any,
    tmp_path: Path,
) -> Iterator[RealFleet]:
    made = RealFleet(kube, namespace, registry_factory(3, access_log=True), real_volumes, tmp_path)
    made.publish("1.0.0")
    yield made
    made.cleanup()


def test_the_real_node_is_a_kubelet_of_its_own_that_only_real_tier_pods_reach(
    kube: Client, real_node: RealNode
) -> None:
    node = kube.get(Node, real_node.name)
    info = node.status.nodeInfo
    assert info.kubeletVersion == "v1.36.3"
    assert info.containerRuntimeVersion.startswith("containerd://1.6")
    assert node.metadata.labels["topology.kubernetes.io/region"] == real_node.region
    assert [t.key for t in node.spec.taints or []] == ["galleon.test/real-node"]
    # kwok keeps its hands off: the heartbeat is the kubelet's own Lease.
    assert node.status.daemonEndpoints.kubeletEndpoint.Port == real_node.kubelet_port


def test_an_upgrade_pulls_each_instance_from_its_replica_and_runs_the_new_version(
    fleet: RealFleet,
) -> None:
    fleet.scaleset("web", 4, pull_policy="Always")
    fleet.wait_fleet("web", "1.0.0", 4)
    for pod in fleet.pods("web"):
        assert fleet.get(pod, "/cgi-bin/version").strip() == "1.0.0"
        assert pod.spec.nodeName == fleet.node.name
    new = fleet.publish("1.0.1")
    fleet.wait_upgrade("web", "Completed")
    fleet.wait_fleet("web", "1.0.1", 4)

    held = fleet.node.images()
    for pod in fleet.pods("web"):
        index = int(pod.metadata.labels["galleon.dev/index"])
        replica = fleet.replicas[index % 2]
        image = pod.spec.containers[0].image
        # galleon assigned the replica by index; the node ran exactly that digest.
        assert image.startswith(f"{replica.host}/") and image.endswith(f"@{new}")
        assert fleet.image_id(pod) == new
        assert held.get(image) == new
        assert fleet.get(pod, "/cgi-bin/version").strip() == "1.0.1"
        assert fleet.get(pod, "/cgi-bin/healthz").strip() == "ok 1.0.1"
    # Each replica served the pulls of its own instances, half of the fleet each (the
    # pods pull Always, so every instance's start asks its replica).
    hosts = [p.spec.containers[0].image.split("/")[0] for p in fleet.pods("web")]
    assert sorted(hosts.count(r.host) for r in fleet.replicas) == [2, 2]
    pulls = [fleet.pulls(replica, new) for replica in fleet.replicas]
    assert min(pulls) >= 2 and max(pulls) - min(pulls) <= 1, pulls
    assert fleet.pulls(fleet.source, new) == 0  # never from the source


def test_data_disks_and_extensions_survive_the_os_replacement(fleet: RealFleet) -> None:
    fleet.scaleset("db", 2)
    fleet.wait_fleet("db", "1.0.0", 2)
    disks = fleet.claims("db")
    markers = {}
    for pod in fleet.pods("db"):
        markers[pod.metadata.name] = f"marker-{uuid.uuid4().hex[:8]}"
        fleet.get(pod, f"/cgi-bin/note?{markers[pod.metadata.name]}")
        assert "extension ran on 1.0.0" in fleet.log(pod, "extension")

    fleet.publish("1.0.1")
    fleet.wait_upgrade("db", "Completed")
    fleet.wait_fleet("db", "1.0.1", 2)
    assert fleet.claims("db") == disks
    for pod in fleet.pods("db"):
        name = pod.metadata.name
        on_disk = fleet.get(pod, "/cgi-bin/disks")
        assert f"/data/data/notes: {markers[name]}" in on_disk
        assert f"/data/data/boots: 1.0.0 {name}" in on_disk
        assert f"/data/data/boots: 1.0.1 {name}" in on_disk
        # The extension ran on the old and again on the new OS image.
        assert f"/data/data/extension: extension ran on 1.0.0 in {name}" in on_disk
        assert f"/data/data/extension: extension ran on 1.0.1 in {name}" in on_disk
        assert "extension ran on 1.0.1" in fleet.log(pod, "extension")
        assert fleet.image_id(pod, "extension") == fleet.digest("1.0.1")


def test_a_version_whose_health_endpoint_fails_is_rolled_back_with_its_disks(
    fleet: RealFleet,
) -> None:
    fleet.scaleset("api", 2, maxBatchInstancePercent=20, maxUnhealthyInstancePercent=20)
    fleet.wait_fleet("api", "1.0.0", 2)
    disks = fleet.claims("api")
    marker = f"marker-{uuid.uuid4().hex[:8]}"
    for pod in fleet.pods("api"):
        fleet.get(pod, f"/cgi-bin/note?{marker}")

    broken = fleet.publish("1.0.2", healthy=False)
    status = fleet.wait_upgrade("api", "Faulted")
    upgrade = status["rollingUpgrade"]
    assert upgrade["error"]["code"] == "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade"
    assert upgrade["failedInstances"] == upgrade["rolledBackInstances"]
    assert len(upgrade["failedInstances"]) == 1
    fleet.wait_fleet("api", "1.0.0", 2)
    assert fleet.claims("api") == disks
    failed = f"api-{upgrade['failedInstances'][0]}"
    for pod in fleet.pods("api"):
        assert fleet.image_id(pod) == fleet.digest("1.0.0")
        assert fleet.get(pod, "/cgi-bin/version").strip() == "1.0.0"
        on_disk = fleet.get(pod, "/cgi-bin/disks")
        assert f"/data/data/notes: {marker}" in on_disk
        booted_bad = f"/data/data/boots: 1.0.2 {pod.metadata.name}" in on_disk
        # The failed instance really booted the bad image on its disk, then the old one.
        assert booted_bad == (pod.metadata.name == failed)
    assert broken in fleet.node.images().values()

    def rolled_back() -> bool:
        history = (fleet.status("api").get("upgradeHistory") or [{}])[0]
        return (history.get("rollbackInfo") or {}).get("successfullyRolledbackInstanceCount") == 1

    wait_for(rolled_back, timeout=60, description="the rollback to be recorded")


def os_container(pod: Any) -> Any:
    return next(s for s in pod.status.containerStatuses if s.name == "os")


def test_an_in_place_upgrade_keeps_each_pod_and_restarts_only_its_os_container(
    fleet: RealFleet,
) -> None:
    fleet.scaleset("inplace", 2, extension=False, os_image_update="InPlaceIfPossible")
    fleet.wait_fleet("inplace", "1.0.0", 2)
    before = {p.metadata.name: p for p in fleet.pods("inplace")}
    disks = fleet.claims("inplace")
    marker = f"marker-{uuid.uuid4().hex[:8]}"
    for pod in before.values():
        fleet.get(pod, f"/cgi-bin/note?{marker}")

    new = fleet.publish("1.0.1")
    fleet.wait_upgrade("inplace", "Completed")
    fleet.wait_fleet("inplace", "1.0.1", 2)
    assert fleet.claims("inplace") == disks
    for pod in fleet.pods("inplace"):
        old = before[pod.metadata.name]
        # The same pod (UID, node, IP): kubelet restarted its OS container only.
        assert pod.metadata.uid == old.metadata.uid
        assert pod.status.podIP == old.status.podIP
        assert os_container(pod).containerID != os_container(old).containerID
        assert os_container(pod).restartCount == os_container(old).restartCount + 1
        assert pod.spec.containers[0].image.endswith(f"@{new}")
        assert fleet.image_id(pod) == new
        assert fleet.get(pod, "/cgi-bin/version").strip() == "1.0.1"
        on_disk = fleet.get(pod, "/cgi-bin/disks")
        assert f"/data/data/notes: {marker}" in on_disk
        assert f"/data/data/boots: 1.0.1 {pod.metadata.name}" in on_disk


def test_an_in_place_upgrade_that_fails_is_rolled_back_in_place(fleet: RealFleet) -> None:
    fleet.scaleset(
        "inback",
        2,
        extension=False,
        os_image_update="InPlaceIfPossible",
        maxBatchInstancePercent=20,
        maxUnhealthyInstancePercent=20,
    )
    fleet.wait_fleet("inback", "1.0.0", 2)
    before = {p.metadata.name: p.metadata.uid for p in fleet.pods("inback")}

    fleet.publish("1.0.2", healthy=False)
    upgrade = fleet.wait_upgrade("inback", "Faulted")["rollingUpgrade"]
    assert upgrade["failedInstances"] == upgrade["rolledBackInstances"]
    assert len(upgrade["failedInstances"]) == 1
    fleet.wait_fleet("inback", "1.0.0", 2)
    failed = f"inback-{upgrade['failedInstances'][0]}"
    for pod in fleet.pods("inback"):
        assert pod.metadata.uid == before[pod.metadata.name]
        assert fleet.image_id(pod) == fleet.digest("1.0.0")
        on_disk = fleet.get(pod, "/cgi-bin/disks")
        # The failed instance booted the bad image, then the old one, in the same pod.
        booted_bad = f"/data/data/boots: 1.0.2 {pod.metadata.name}" in on_disk
        assert booted_bad == (pod.metadata.name == failed)
        restarts = os_container(pod).restartCount
        assert restarts == (2 if pod.metadata.name == failed else 0)
