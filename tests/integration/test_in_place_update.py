"""`osImageUpdate: InPlaceIfPossible` against the real apiserver on kwok nodes: the
pods keep their UIDs and get the new image by a PATCH; an instance whose container
kubelet has not restarted is never counted healthy, even though its pod still says
Ready (kwok restarts nothing, so its in-place updates never complete); and an
admission policy that forbids pod updates makes galleon recreate instead. The real
restart of the container by kubelet is tested on the real node
(test_real_nodes.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Pod

from galleon_testkit.admission import namespace_policy
from galleon_testkit.fleets import FleetHarness, Watcher
from galleon_testkit.waiting import wait_for

pytestmark = pytest.mark.integration
ANNOTATION = "galleon.dev/in-place-update"


def in_place(fleet: FleetHarness, name: str, capacity: int, **rolling: Any) -> None:
    fleet.scaleset(
        name,
        capacity,
        upgradePolicy={
            "mode": "Rolling",
            "osImageUpdate": "InPlaceIfPossible",
            "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True},
            "rollingUpgradePolicy": {
                "maxBatchInstancePercent": 20,
                "maxUnhealthyInstancePercent": 20,
                "maxUnhealthyUpgradedInstancePercent": 20,
                "upgradedInstanceHealthTimeout": "PT8S",
                **rolling,
            },
        },
    )


def ready(pod: Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def test_a_pod_updated_in_place_is_not_healthy_until_its_container_restarted(
    fleet: FleetHarness,
) -> None:
    in_place(fleet, "inplace", 5)
    fleet.wait_fleet("inplace", "1.0.0", 5)
    uids = {p.metadata.name: p.metadata.uid for p in fleet.pods("inplace")}
    disks = fleet.claims("inplace")

    with Watcher(fleet, "inplace", 5) as watcher:
        fleet.publish("1.0.2", [fleet.east])
        status = fleet.wait_upgrade("inplace", "Faulted", timeout=120)
    upgrade = status["rollingUpgrade"]
    # kwok restarts no container, so the first batch's member never ran 1.0.2: it is
    # Unhealthy at the health timeout, though its pod reported Ready all along.
    assert upgrade["failedInstances"] == [0], upgrade
    assert upgrade["error"]["code"] == "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade"
    member = next(p for p in fleet.pods("inplace") if p.metadata.name == "inplace-0")
    assert ready(member), "kwok keeps the pod Ready: only the annotation says it is updating"
    # The same pods throughout: nothing was deleted or created, the disks stayed.
    assert {p.metadata.name: p.metadata.uid for p in fleet.pods("inplace")} == uids
    assert all(len(u) == 1 for u in watcher.uids.values()), watcher.uids
    assert fleet.claims("inplace") == disks
    # It was rolled back in place: the old image, the old revision's labels, and a
    # record of the update it waits for.
    assert upgrade["rolledBackInstances"] == [0]
    wait_for(
        lambda: (
            next(
                p for p in fleet.pods("inplace") if p.metadata.name == "inplace-0"
            ).metadata.labels["galleon.dev/version"]
            == "1.0.0"
        ),
        timeout=30,
        description="inplace-0 back on 1.0.0",
    )
    member = next(p for p in fleet.pods("inplace") if p.metadata.name == "inplace-0")
    assert member.spec.containers[0].image.endswith("@" + fleet.digest("1.0.0"))
    note = json.loads(member.metadata.annotations[ANNOTATION])
    assert note == {"container": "os", "from": "", "digest": fleet.digest("1.0.0")}
    for pod in fleet.pods("inplace"):
        if pod.metadata.name != "inplace-0":
            assert pod.metadata.labels["galleon.dev/version"] == "1.0.0"
            assert ANNOTATION not in (pod.metadata.annotations or {})


@pytest.fixture
def no_pod_image_updates(fleet: FleetHarness) -> Iterator[str]:
    """A ValidatingAdmissionPolicy, bound to the test's namespace, that refuses any
    update of a pod's container image there (as a hardened cluster might)."""
    with namespace_policy(
        fleet.kube,
        fleet.namespace,
        rule={
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["UPDATE"],
            "resources": ["pods"],
        },
        expression="object.spec.containers.all(c, oldObject.spec.containers"
        ".exists(o, o.name == c.name && o.image == c.image))",
        message="pod images are immutable here",
        prefix="no-image-updates",
    ) as name:
        yield name


def test_a_refused_in_place_update_is_a_recreate(
    fleet: FleetHarness, no_pod_image_updates: str
) -> None:
    in_place(fleet, "hardened", 5)
    fleet.wait_fleet("hardened", "1.0.0", 5)
    uids = {p.metadata.name: p.metadata.uid for p in fleet.pods("hardened")}
    probe = next(iter(uids))

    def enforced() -> bool:
        try:
            fleet.kube.patch(
                Pod,
                probe,
                {"spec": {"containers": [{"name": "os", "image": "elsewhere/os:1"}]}},
                namespace=fleet.namespace,
                dry_run=True,
            )
        except ApiError as error:
            return "pod images are immutable here" in (error.status.message or "")
        return False

    wait_for(enforced, timeout=30, description="the policy to be enforced")
    fleet.publish("1.0.2", [fleet.east])
    fleet.wait_upgrade("hardened", "Completed", timeout=120)
    fleet.wait_fleet("hardened", "1.0.2", 5)
    for pod in fleet.pods("hardened"):
        # Every instance was recreated (a new pod, without an in-place record).
        assert pod.metadata.uid != uids[pod.metadata.name]
        assert ANNOTATION not in (pod.metadata.annotations or {})
        assert pod.spec.containers[0].image.endswith("@" + fleet.digest("1.0.2"))
