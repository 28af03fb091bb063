"""Release waves with bake time and version quarantine, end to end: the real operator,
the real apiserver with kwok nodes, real registries.

Three regions in two waves: `east` is wave 1 (bake time of a few seconds), `west` and
`south` are wave 2. Each region has a ScaleSet following latest. A version replicates
everywhere at once; ScaleSets in wave 2 start upgrading only once every ScaleSet of
wave 1 completed and baked, and never while a version is quarantined.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType
from typer.testing import CliRunner

from galleon.cli import main as cli
from galleon.cli.cluster import Cluster
from galleon.core import times
from galleon.kube.resources import ImageDefinition, ImageVersion, ScaleSet
from galleon_testkit.fleets import FleetHarness
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import stays_true, wait_for
from galleon_testkit.world import World

pytestmark = pytest.mark.integration
BAKE_SECONDS = 6


class Waves:
    def __init__(self, fleet: FleetHarness) -> None:
        self.fleet, self.kube, self.namespace = fleet, fleet.kube, fleet.namespace
        self.east, self.west = fleet.east, fleet.west
        self.south = fleet.world.region("south", fleet.world.rest[3:4], node_region="westcentralus")

    def regions(self) -> list[str]:
        return [self.east, self.west, self.south]

    def definition(self) -> dict[str, Any]:
        return dict(self.kube.get(ImageDefinition, "os", namespace=self.namespace))

    def released(self) -> dict[str, Any]:
        lines = (self.definition().get("status") or {}).get("latestVersionByRegion") or []
        return {line["region"]: line for line in lines}

    def upgrade(self, name: str) -> dict[str, Any]:
        return dict(self.fleet.status(name).get("rollingUpgrade") or {})

    def version_status(self, version: str) -> dict[str, Any]:
        name = "os-" + version.replace(".", "-")
        return dict(self.kube.get(ImageVersion, name, namespace=self.namespace).get("status") or {})


@pytest.fixture
def waves(
    control_plane: Any,
    kube: Client,
    namespace: str,
    registry_factory: Callable[[int], list[Registry]],
    operator: Any,
    tmp_path: Path,
) -> Iterator[Waves]:
    world = World(kube, namespace, registry_factory(5))
    fleet = FleetHarness.with_versions(world, tmp_path, control_plane.client)
    made = Waves(fleet)
    kube.patch(
        ImageDefinition,
        "os",
        {
            "spec": {
                "releasePolicy": {
                    "waves": [
                        {
                            "name": "canary",
                            "regions": [made.east],
                            "bakeTime": f"PT{BAKE_SECONDS}S",
                        },
                        {"regions": [made.west, made.south]},
                    ]
                }
            }
        },
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    fleet.publish("1.0.0", made.regions())
    # The first version travels by the waves too: east at once, then the others.
    wait_for(
        lambda: (
            all(line.get("version") == "1.0.0" for line in made.released().values())
            and len(made.released()) == 3
        ),
        timeout=60,
        description="1.0.0 released to the three regions",
    )
    for region, name in ((made.east, "east"), (made.west, "west"), (made.south, "south")):
        fleet.scaleset(f"web-{name}", 5, region=region)
    for name in ("east", "west", "south"):
        fleet.wait_fleet(f"web-{name}", "1.0.0", 5)
    yield made
    for s in list(kube.list(ScaleSet, namespace=namespace)):
        with contextlib.suppress(ApiError):
            kube.delete(ScaleSet, s.metadata.name, namespace=namespace)
    world.cleanup()


def test_wave_two_starts_only_after_wave_one_completed_and_baked(waves: Waves) -> None:
    fleet = waves.fleet
    fleet.publish("1.0.2", waves.regions())
    seen_baking: list[str] = []
    early: list[dict[str, Any]] = []

    def east_done() -> dict[str, Any]:
        lines = waves.released()
        message = lines.get(waves.west, {}).get("message") or ""
        if "bake" in message:
            seen_baking.append(message)
        # Wave 2 never moves while wave 1 is upgrading.
        for name in ("web-west", "web-south"):
            upgrade = waves.upgrade(name)
            if upgrade.get("toVersion") not in (None, "1.0.0"):
                early.append(upgrade)
        upgrade = waves.upgrade("web-east")
        done = upgrade.get("toVersion") == "1.0.2" and upgrade.get("phase") == "Done"
        return upgrade if done else {}

    east = wait_for(east_done, timeout=120, description="wave 1 upgraded to 1.0.2")
    assert not early, f"wave 2 moved before wave 1 completed: {early[0]}"
    assert east["runningStatus"]["code"] == "Completed"
    ended = times.parse(east["phaseSince"])
    assert ended is not None
    status = fleet.status("web-west")
    assert status["waitingForReplication"] == "1.0.2"
    upgrading = {c["type"]: c for c in status["conditions"]}["Upgrading"]
    assert "1.0.2 waits for its wave" in upgrading["message"], upgrading

    def wave_two_started() -> dict[str, Any]:
        lines = waves.released()
        message = lines.get(waves.west, {}).get("message") or ""
        if "bake" in message:
            seen_baking.append(message)
        started = [waves.upgrade(n) for n in ("web-west", "web-south")]
        return {"started": started} if all(u.get("toVersion") == "1.0.2" for u in started) else {}

    started = wait_for(wave_two_started, timeout=60, description="wave 2 upgrading to 1.0.2")
    assert seen_baking, "the definition never said that wave 2 waits for the bake"
    assert any("bake of wave 1 (canary)" in m for m in seen_baking), seen_baking
    for upgrade in started["started"]:
        begun = times.parse(upgrade["runningStatus"]["startTime"])
        assert begun is not None
        # Times are whole seconds: the start is at least the bake after the end.
        assert begun >= ended + timedelta(seconds=BAKE_SECONDS - 1), (ended, begun)
    for name in ("web-west", "web-south"):
        fleet.wait_upgrade(name, "Completed", timeout=120)

    # The definition's release status follows the ScaleSets' completion on its next
    # refresh, so wave 2 reads Upgrading for a moment after both ScaleSets completed.
    def wave_two_settled() -> dict[str, Any]:
        release = (waves.definition().get("status") or {}).get("release") or {}
        states = [w["state"] for w in release.get("waves") or []]
        return release if states in (["Done", "Done"], ["Done", "Baking"]) else {}

    release = wait_for(wave_two_settled, timeout=30, description="wave 2 Done or Baking")
    assert release["version"] == "1.0.2"
    assert all(line["version"] == "1.0.2" for line in waves.released().values())


def test_a_fault_in_wave_one_quarantines_the_version_until_released(waves: Waves) -> None:
    fleet = waves.fleet
    broken = fleet.digest("1.0.3")
    # A second ScaleSet in east whose instances never get healthy on 1.0.3.
    fleet.scaleset("canary", 2, annotations={"galleon.test/never-ready-images": broken})
    fleet.wait_fleet("canary", "1.0.0", 2)
    # web-east upgrades slowly (one instance per batch, 2 s to Ready, a pause between).
    fleet.patch(
        "web-east",
        {"spec": {"upgradePolicy": {"rollingUpgradePolicy": {"pauseTimeBetweenBatches": "PT4S"}}}},
    )
    fleet.publish("1.0.3", waves.regions())
    faulted = fleet.wait_upgrade("canary", "Faulted", timeout=120)
    assert faulted["rollingUpgrade"]["toVersion"] == "1.0.3"

    def quarantined() -> dict[str, Any]:
        found = (waves.definition().get("status") or {}).get("quarantinedVersions") or []
        return found[0] if found else {}

    entry = wait_for(quarantined, timeout=30, description="1.0.3 quarantined")
    assert entry["version"] == "1.0.3"
    assert entry["scaleSet"] == f"{waves.namespace}/canary"
    mark = wait_for(
        lambda: waves.version_status("1.0.3").get("quarantine"),
        timeout=30,
        description="the ImageVersion says it is quarantined",
    )
    assert mark["scaleSet"] == f"{waves.namespace}/canary"
    # Not latest anywhere; web-east holds after its current batch; wave 2 never moves.
    wait_for(
        lambda: all(line.get("version") == "1.0.0" for line in waves.released().values()),
        timeout=30,
        description="latest back to 1.0.0 everywhere",
    )

    def held() -> dict[str, Any]:
        upgrade = waves.upgrade("web-east")
        running = (upgrade.get("runningStatus") or {}).get("code") == "RollingForward"
        between = upgrade.get("phase") == "Pausing" and running
        return upgrade if between else {}

    hold = wait_for(held, timeout=60, description="web-east held between batches")
    batch = hold["currentBatch"]
    assert batch < 5, hold

    def still_held() -> bool:
        upgrade = waves.upgrade("web-east")
        wave_two = [waves.upgrade(n).get("toVersion") for n in ("web-west", "web-south")]
        return (
            upgrade.get("currentBatch") == batch
            and upgrade.get("phase") == "Pausing"
            and all(v in (None, "1.0.0") for v in wave_two)
        )

    stays_true(still_held, duration=BAKE_SECONDS + 6, description="web-east stays held")
    conditions = {c["type"]: c for c in fleet.status("web-east")["conditions"]}
    assert "quarantined" in conditions["Ready"]["message"], conditions["Ready"]
    assert any("canary" in m for m in fleet.events("os", "VersionQuarantined"))

    # The canary goes; the quarantine stays until released by the annotation.
    waves.kube.delete(ScaleSet, "canary", namespace=waves.namespace)
    stays_true(still_held, duration=4, description="the quarantine outlives its ScaleSet")
    now = datetime.now(UTC).replace(microsecond=0)
    waves.kube.patch(
        ImageVersion,
        "os-1-0-3",
        {"metadata": {"annotations": {"galleon.dev/release-quarantine": times.format(now)}}},
        namespace=waves.namespace,
        patch_type=PatchType.MERGE,
    )
    wait_for(lambda: not quarantined(), timeout=30, description="quarantine released")
    fleet.wait_upgrade("web-east", "Completed", timeout=180)
    for name in ("web-west", "web-south"):
        fleet.wait_upgrade(name, "Completed", timeout=180)
        assert waves.upgrade(name)["toVersion"] == "1.0.3"
    assert not waves.version_status("1.0.3").get("quarantine")


def test_the_definition_plan_shows_the_waves_and_when_wave_two_opens(
    waves: Waves, control_plane: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`kubectl galleon plan imagedefinition os -o json` while wave 1 bakes 1.0.2: wave 1
    Baking (or still Upgrading), wave 2 Waiting with its regions and the time it opens;
    wave 2's ScaleSets then start no sooner than one second before that time, and that
    time is no later than one second after they started. The plan only reads."""

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("plan imagedefinition must not write")

    monkeypatch.setattr(Cluster, "merge_patch", refuse)
    monkeypatch.setattr(Cluster, "create", refuse)

    def planned() -> dict[str, Any]:
        arguments = ["plan", "imagedefinition", "os", "-n", waves.namespace, "-o", "json"]
        arguments += ["--kubeconfig", str(control_plane.kubeconfig)]
        result = CliRunner().invoke(cli.app, arguments, env={"KUBECONFIG": None})
        assert result.exit_code == 0, result.output
        document: dict[str, Any] = json.loads(result.stdout)
        return document

    waves.fleet.publish("1.0.2", waves.regions())
    wrong: list[dict[str, Any]] = []

    def baking() -> dict[str, Any]:
        document = planned()
        if document["release"]["version"] != "1.0.2":
            return {}
        first, second = document["waves"]
        if first["state"] not in ("Upgrading", "Baking") or second["state"] != "Waiting":
            wrong.append(document)  # wave 1 done and wave 2 open before a plan saw the bake
        return document if first["state"] == "Baking" else {}

    during = wait_for(baking, timeout=120, description="a plan while wave 1 bakes 1.0.2")
    assert not wrong, f"no plan saw wave 1 bake: {wrong[0]}"
    first, second = during["waves"]
    assert (first["wave"], first["name"], first["regions"]) == (1, "canary", [waves.east])
    assert (second["wave"], second["regions"]) == (2, [waves.west, waves.south])
    assert first["releasedAt"] and second["releasedAt"] is None
    upgraded, opens = times.parse(first["upgradedAt"]), times.parse(second["opensAt"])
    assert upgraded is not None and opens is not None
    assert opens == upgraded + timedelta(seconds=BAKE_SECONDS), during["waves"]
    by_name = {s["name"]: s for s in during["scaleSets"]}
    assert {name: s["wave"] for name, s in by_name.items()} == {
        "web-east": 1,
        "web-west": 2,
        "web-south": 2,
    }
    assert by_name["web-east"]["currentVersion"] == "1.0.2"
    assert all(by_name[n]["currentVersion"] == "1.0.0" for n in ("web-west", "web-south"))
    regions = {r["region"]: r for r in during["regions"]}
    assert all(regions[r]["pendingVersion"] == "1.0.2" for r in (waves.west, waves.south))
    assert during["scaleSetsListed"]["allNamespaces"] is True

    def wave_two_started() -> list[datetime]:
        upgrades = [waves.upgrade(n) for n in ("web-west", "web-south")]
        if not all(u.get("toVersion") == "1.0.2" for u in upgrades):
            return []
        found = [times.parse((u.get("runningStatus") or {}).get("startTime")) for u in upgrades]
        return [f for f in found if f is not None] if all(found) else []

    started = wait_for(wave_two_started, timeout=60, description="wave 2 upgrading to 1.0.2")
    slack = timedelta(seconds=1)
    for begun in started:
        # Times are whole seconds, hence the second of slack either way.
        assert opens <= begun + slack, (opens, begun)
        assert begun >= opens - slack, (opens, begun)
    after = planned()
    assert after["waves"][1]["state"] in ("Upgrading", "Baking", "Done"), after["waves"]
    assert after["waves"][1]["releasedAt"] is not None
