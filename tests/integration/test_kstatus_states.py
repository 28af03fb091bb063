"""galleon's objects go through kstatus' states as Flux sees them: a rollout is
InProgress, a finished one Current, a paused one Current (nothing moves), a
faulted one Failed; an ImageVersion is InProgress while it replicates, Current
when done, Failed when its source is missing; a spec change is InProgress until
the operator has observed it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client

from galleon.kube.resources import ImageVersion, ScaleSet
from galleon_testkit.fleets import FleetHarness
from galleon_testkit.kstatus import compute
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import wait_for
from galleon_testkit.world import World

pytestmark = pytest.mark.integration


def test_kstatus_states_of_a_scaleset_and_its_versions(
    control_plane: Any,
    kube: Client,
    namespace: str,
    registry_factory: Callable[[int], list[Registry]],
    operator: Any,
    tmp_path: Path,
) -> None:
    world = World(kube, namespace, registry_factory(4))
    fleet = FleetHarness.with_versions(world, tmp_path, control_plane.client)
    seen: dict[str, list[str]] = {"scaleset": [], "version": []}

    def state(kind: Any, name: str, key: str) -> str:
        current = compute(dict(kube.get(kind, name, namespace=namespace)))[0]
        if not seen[key] or seen[key][-1] != current:
            seen[key].append(current)
        return current

    try:
        fleet.publish("1.0.0", [fleet.east, fleet.west])
        assert state(ImageVersion, "os-1-0-0", "version") == "Current"
        # A missing source is Failed (it needs someone to change something).
        world.version("os-9-9-9", "9.9.9", [{"name": fleet.east}])
        wait_for(
            lambda: state(ImageVersion, "os-9-9-9", "version") == "Failed",
            timeout=60,
            description="a version with a missing source is Failed",
        )
        fleet.scaleset("web", 5, annotations={"galleon.test/ready-delay": "2s"}, paused=False)
        fleet.wait_fleet("web", "1.0.0", 5)
        wait_for(
            lambda: state(ScaleSet, "web", "scaleset") == "Current",
            timeout=30,
            description="a healthy fleet is Current",
        )
        fleet.publish("1.0.2", [fleet.east])
        wait_for(
            lambda: state(ScaleSet, "web", "scaleset") == "InProgress",
            timeout=60,
            description="a rollout is InProgress",
        )
        fleet.patch("web", {"spec": {"paused": True}})
        wait_for(
            lambda: (
                state(ScaleSet, "web", "scaleset") == "Current"
                and fleet.status("web")["rollingUpgrade"]["phase"] == "Pausing"
            ),
            timeout=60,
            description="a paused rollout is Current (nothing moves)",
        )
        fleet.patch("web", {"spec": {"paused": False}})
        fleet.wait_upgrade("web", "Completed")
        wait_for(
            lambda: state(ScaleSet, "web", "scaleset") == "Current",
            timeout=30,
            description="a finished rollout is Current",
        )
        # A version whose instances never get Ready: the rollout faults, Failed.
        fleet.patch(
            "web",
            {
                "spec": {
                    "template": {
                        "metadata": {
                            "annotations": {
                                "galleon.test/never-ready-images": fleet.digest("1.0.3")
                            }
                        }
                    }
                }
            },
        )
        wait_for(
            lambda: state(ScaleSet, "web", "scaleset") == "Current",
            timeout=90,
            description="the template change rolled out",
        )
        fleet.publish("1.0.3", [fleet.east])
        wait_for(
            lambda: state(ScaleSet, "web", "scaleset") == "Failed",
            timeout=120,
            description="a faulted rollout is Failed",
        )
    finally:
        world.cleanup()
    states = seen["scaleset"]
    assert states[-1] == "Failed" and "InProgress" in states and "Current" in states, states
