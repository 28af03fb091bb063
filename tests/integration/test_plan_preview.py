"""`kubectl galleon plan scaleset NAME` against the real operator: the batches it
previews are the batches the operator then takes.

A ScaleSet of 10 instances on 1.0.0 with automatic OS upgrades off (so nothing moves
by itself) sees 1.0.1 reach its region. The plan, printed with `-o json`, shows the
batches a start request would take; the test then starts the upgrade (annotation
galleon.dev/start-upgrade), records every batch the operator starts (from
status.rollingUpgrade, polled throughout, and from the BatchStarted Events) and
compares them with the preview: numbers, totals, instances, and the spacing of the
starts (never sooner than previewed). Half-way, in the pause after batch 1, a second
plan shows the batches left, which must be the ones taken after it. Every plan only
reads: the plugin's write methods fail if called.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from typing import Any

import pytest
from lightkube.core.exceptions import ApiError
from typer.testing import CliRunner, Result

from galleon import clock
from galleon.cli import main as cli
from galleon.cli.cluster import Cluster
from galleon.core import instances as inst
from galleon.core import times
from galleon.kube.resources import ScaleSet
from galleon_testkit.fleets import FleetHarness
from galleon_testkit.waiting import stays_true, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.fleet(versions=("1.0.0", "1.0.1"), publish_to=("east",)),
]
BATCH_STARTED = re.compile(r"^batch (\d+) of (\d+): instances ([\d, ]+) to (\S+)$")
PAUSE_SECONDS = 5


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plugin's write methods fail: a plan that tried to write would exit 1."""

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("plan scaleset must not write")

    monkeypatch.setattr(Cluster, "merge_patch", refuse)
    monkeypatch.setattr(Cluster, "create", refuse)


def plan(control_plane: Any, namespace: str, *options: str) -> Result:
    arguments = ["plan", "scaleset", "web", "-n", namespace, *options]
    arguments += ["--kubeconfig", str(control_plane.kubeconfig)]
    return CliRunner().invoke(cli.app, arguments, env={"COLUMNS": "160", "KUBECONFIG": None})


def plan_json(control_plane: Any, namespace: str) -> dict[str, Any]:
    result = plan(control_plane, namespace, "-o", "json")
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def previewed(document: dict[str, Any]) -> list[tuple[int, int, tuple[int, ...]]]:
    return [(b["number"], b["of"], tuple(b["instances"])) for b in document["batches"]]


class BatchRecorder:
    """Polls the ScaleSet's status in a thread and keeps, for each batch the operator
    started, its members and start time as status.rollingUpgrade recorded them."""

    def __init__(self, fleet: FleetHarness) -> None:
        self.fleet = fleet
        self.batches: dict[int, tuple[tuple[int, ...], str, int]] = {}
        """batch number → (members, batchStartTime, totalBatches)."""
        self.phases: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BatchRecorder:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        client = self.fleet.new_client()
        while not self._stop.is_set():
            with contextlib.suppress(ApiError):
                obj = client.get(ScaleSet, "web", namespace=self.fleet.namespace)
                upgrade = (obj.get("status") or {}).get("rollingUpgrade") or {}
                code = (upgrade.get("runningStatus") or {}).get("code")
                number, phase = int(upgrade.get("currentBatch") or 0), upgrade.get("phase")
                if code == "RollingForward" and phase in ("Replacing", "Waiting") and number:
                    members = tuple(upgrade.get("batchInstances") or ())
                    self.batches.setdefault(
                        number,
                        (members, upgrade["batchStartTime"], int(upgrade["totalBatches"])),
                    )
                if code and (not self.phases or self.phases[-1] != (number, phase)):
                    self.phases.append((number, phase))
            self._stop.wait(0.1)


def test_the_plan_preview_matches_the_batches_the_operator_takes(
    fleet: FleetHarness, control_plane: Any, read_only: None
) -> None:
    namespace = fleet.namespace
    fleet.scaleset(
        "web",
        10,
        upgradePolicy={
            "mode": "Rolling",
            "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": False},
            "rollingUpgradePolicy": {
                "maxBatchInstancePercent": 30,
                "maxUnhealthyInstancePercent": 30,
                "maxUnhealthyUpgradedInstancePercent": 20,
                "upgradedInstanceHealthTimeout": "PT20S",
                "pauseTimeBetweenBatches": f"PT{PAUSE_SECONDS}S",
            },
        },
    )
    fleet.wait_fleet("web", "1.0.0", 10)
    fleet.publish("1.0.1", [fleet.east])
    wait_for(
        lambda: fleet.status("web").get("targetVersion") == "1.0.1",
        timeout=60,
        description="the operator to see 1.0.1 as the target",
    )
    stays_true(
        lambda: all(p.metadata.labels[inst.VERSION_LABEL] == "1.0.0" for p in fleet.pods("web")),
        duration=3,
        description="no instance replaced with automatic OS upgrades off",
    )
    before = plan_json(control_plane, namespace)
    upgrade = before["upgrade"]
    assert upgrade["starts"] == "OnRequest", before
    assert (upgrade["fromVersion"], upgrade["toVersion"]) == ("1.0.0", "1.0.1")
    assert upgrade["reason"] == "UpgradeAvailable" and upgrade["startedBy"] == "User"
    assert "may not start by itself" in before["notes"][0]
    expected = previewed(before)
    assert [members for _, _, members in expected] == [(0, 1, 2), (3, 4, 5), (6, 7, 8), (9,)]
    assert before["outcome"]["result"] == "Completed"
    text = plan(control_plane, namespace)
    assert text.exit_code == 0, text.output
    assert "batch 1 of 4: instances 0-2 — earliest" in text.stdout
    assert "BATCHES  if started now" in text.stdout

    with BatchRecorder(fleet) as recorder:
        fleet.patch(
            "web",
            {"metadata": {"annotations": {inst.START_ANNOTATION: times.format(clock.now())}}},
        )
        # In the pause after batch 1, the plan shows the batches left.
        wait_for(
            lambda: (1, "Pausing") in recorder.phases,
            timeout=60,
            description="batch 1 done and the pause before batch 2",
        )
        during = plan_json(control_plane, namespace)
        status = fleet.wait_upgrade("web", "Completed", timeout=180)
    fleet.wait_fleet("web", "1.0.1", 10)

    taken = [(n, total, members) for n, (members, _, total) in sorted(recorder.batches.items())]
    assert taken == expected, (taken, expected, recorder.phases)
    assert status["rollingUpgrade"]["totalBatches"] == len(expected)
    assert status["rollingUpgrade"]["startedBy"] == "User"

    def started_events() -> list[tuple[int, int, tuple[int, ...]]]:
        found = []
        for message in fleet.events("web", "BatchStarted"):
            match = BATCH_STARTED.match(message)
            assert match, message
            members = tuple(int(i) for i in match.group(3).split(", "))
            found.append((int(match.group(1)), int(match.group(2)), members))
        return sorted(found) if len(found) >= len(expected) else []

    events = wait_for(started_events, timeout=30, description="a BatchStarted Event per batch")
    assert events == expected

    # The running upgrade's plan, made during the pause after batch 1, listed exactly
    # the batches taken after it.
    assert during["upgrade"]["starts"] == "Running", during
    assert "runningBatch" not in during  # batch 1 was done: the pause runs
    assert previewed(during) == expected[1:]

    # Earliest means no sooner: each batch started at least as long after batch 1 as
    # previewed (times are to the second, hence the second of slack).
    def seconds(stamp: str) -> float:
        moment = times.parse(stamp)
        assert moment is not None
        return moment.timestamp()

    first_taken = seconds(recorder.batches[1][1])
    first_previewed = seconds(before["batches"][0]["earliest"])
    for batch in before["batches"][1:]:
        waited = seconds(recorder.batches[batch["number"]][1]) - first_taken
        foreseen = seconds(batch["earliest"]) - first_previewed
        assert foreseen == (batch["number"] - 1) * PAUSE_SECONDS
        assert waited >= foreseen - 1, (batch, waited, foreseen)
