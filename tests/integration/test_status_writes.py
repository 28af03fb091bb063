"""How a ScaleSet's status is written, seen through a watch on the real apiserver while
the real operator runs it on kwok nodes: a write that only moves counts
(`galleon.core.scaleset_status.only_counts_moved`) comes at least the coalescing
window after the write before it, a decision is written when it is made, and the
counts written last are the fleet's, with nothing but the window to wake the pass
that writes them.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from typing import Any

import pytest
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from galleon.controllers.scaleset.reconcile import COALESCE_SECONDS
from galleon.core.scaleset_status import only_counts_moved
from galleon.kube.resources import ScaleSet
from galleon_testkit.fleets import FleetHarness
from galleon_testkit.waiting import wait_for

pytestmark = pytest.mark.integration
SLACK_SECONDS = 1.0
"""How much earlier than the window a write may be seen (the watch delivers late, and
two events may come late by different amounts)."""


class StatusWrites:
    """Every status of one ScaleSet its watch delivers, with the moment it came."""

    def __init__(self, fleet: FleetHarness, name: str) -> None:
        self.fleet, self.name = fleet, name
        self.seen: list[tuple[float, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StatusWrites:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()  # the watch ends at its next event (the ScaleSet's deletion at last)

    def _run(self) -> None:
        client = self.fleet.new_client()
        for kind, scaleset in client.watch(
            ScaleSet,
            namespace=self.fleet.namespace,
            fields={"metadata.name": self.name},
            server_timeout=30,
        ):
            if self._stop.is_set() or kind == "DELETED":
                return
            status = dict(scaleset.get("status") or {})
            if not self.seen or self.seen[-1][1] != status:
                self.seen.append((time.monotonic(), status))

    def wait_counts(self, version: str, instances: int, healthy: int) -> None:
        """Wait until the ScaleSet's status counts `instances` on `version`, `healthy` of
        them, and the watch has delivered that write as the last one."""
        counted = [{"version": version, "instances": instances, "healthy": healthy}]
        final = wait_for(
            lambda: (
                (s := self.fleet.status(self.name)).get("instancesByVersion") == counted
                and s.get("replicas") == instances
                and s.get("readyReplicas") == healthy
                and s
            ),
            timeout=COALESCE_SECONDS + 30,
            description=f"{healthy} of {instances} instances on {version} healthy, written",
        )
        wait_for(
            lambda: self.seen and self.seen[-1][1] == final,
            timeout=30,
            description="the watch delivered the last write",
        )

    def counts_only_gaps(self) -> list[tuple[float, str]]:
        """(seconds since the write before, the two statuses) of each write seen that
        only moved counts."""
        return [
            (after - before, json.dumps([old, new], indent=1))
            for (before, old), (after, new) in itertools.pairwise(self.seen)
            if only_counts_moved(old, new)
        ]


def unready(fleet: FleetHarness, pod: str) -> None:
    """Imitate a failure: kwok never touches a Running pod again."""
    fleet.kube.patch(
        Pod.Status,
        pod,
        {"status": {"conditions": [{"type": "Ready", "status": "False"}]}},
        namespace=fleet.namespace,
        patch_type=PatchType.STRATEGIC,
    )


def test_instances_failing_one_after_another_are_counted_in_writes_a_window_apart(
    fleet: FleetHarness,
) -> None:
    fleet.scaleset("web", 5)
    fleet.wait_fleet("web", "1.0.0", 5)
    wait_for(
        lambda: fleet.status("web").get("readyReplicas") == 5,
        timeout=COALESCE_SECONDS + 30,
        description="5 Ready instances counted",
    )
    with StatusWrites(fleet, "web") as writes:
        for index in range(3):
            unready(fleet, f"web-{index}")
        # Nothing but the window wakes the pass that writes the last counts.
        writes.wait_counts("1.0.0", 5, healthy=2)
    gaps = writes.counts_only_gaps()
    assert gaps, "no write only moved counts"
    for gap, statuses in gaps:
        assert gap >= COALESCE_SECONDS - SLACK_SECONDS, (gap, statuses)


def test_an_upgrade_writes_each_decision_and_the_last_counts(fleet: FleetHarness) -> None:
    fleet.scaleset(
        "web",
        5,
        annotations={"galleon.test/ready-delay": "4s"},
        rolling={
            "maxBatchInstancePercent": 40,
            "maxUnhealthyInstancePercent": 40,
            "maxUnhealthyUpgradedInstancePercent": 40,
            "upgradedInstanceHealthTimeout": "PT30S",
        },
    )
    fleet.wait_fleet("web", "1.0.0", 5)
    with StatusWrites(fleet, "web") as writes:
        fleet.publish("1.0.2", [fleet.west, fleet.east])
        fleet.wait_upgrade("web", "Completed")
        fleet.wait_fleet("web", "1.0.2", 5)
        writes.wait_counts("1.0.2", 5, healthy=5)
    for gap, statuses in writes.counts_only_gaps():
        assert gap >= COALESCE_SECONDS - SLACK_SECONDS, (gap, statuses)
    # Every phase of every batch was written (a decision is never held back), in order.
    phases = []
    for _, status in writes.seen:
        upgrade = status.get("rollingUpgrade") or {}
        step = (upgrade.get("currentBatch"), upgrade.get("phase"))
        if upgrade and (not phases or phases[-1] != step):
            phases.append(step)
    assert phases == [
        (1, "Replacing"),
        (1, "Waiting"),
        (2, "Replacing"),
        (2, "Waiting"),
        (3, "Replacing"),
        (3, "Waiting"),
        (3, "Done"),
    ], phases
