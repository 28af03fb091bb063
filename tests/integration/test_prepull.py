"""Pre-pull end to end on kwok nodes: before a Rolling upgrade takes its first batch
down, a pull pod per node of the instances it replaces pulls the new image (the
references those instances will run); pull pods go once the upgrade is done; with
`prePullImages: false` none is made.

Whether the pull shortens an instance's downtime is measured on real nodes
(`hack/bench_prepull.py`, docs/benchmarks.md): kwok nodes pull nothing.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest
from lightkube.resources.core_v1 import Pod

from galleon.core import prepull
from galleon_testkit.fleets import FleetHarness
from galleon_testkit.waiting import stays_true, wait_for

pytestmark = pytest.mark.integration


class PodLog:
    """Polls the namespace's pods throughout: when each pull pod was first seen, and
    when each instance pod UID was last seen (gone = replaced)."""

    def __init__(self, fleet: FleetHarness, name: str) -> None:
        self.fleet, self.name = fleet, name
        self.pulls: dict[str, dict[str, Any]] = {}
        self.first_pull_at: float | None = None
        self.first_gone_at: float | None = None
        self.pulls_when_first_gone: dict[str, str | None] = {}
        self.instances: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PodLog:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        import time

        client = self.fleet.new_client()
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                now = time.monotonic()
                pods = list(client.list(Pod, namespace=self.fleet.namespace))
                for p in pods:
                    labels = p.metadata.labels or {}
                    if labels.get(prepull.PULL_LABEL) == self.name:
                        if p.metadata.name not in self.pulls:
                            self.pulls[p.metadata.name] = {
                                "node": p.spec.nodeName,
                                "images": sorted(c.image for c in p.spec.containers),
                                "revision": labels.get(prepull.PULL_REVISION_LABEL),
                            }
                            if self.first_pull_at is None:
                                self.first_pull_at = now
                        if p.status is not None and p.status.phase:
                            self.pulls[p.metadata.name].setdefault("phases", set()).add(
                                p.status.phase
                            )
                    elif labels.get("galleon.dev/scaleset") == self.name:
                        moved = p.metadata.deletionTimestamp is not None or (
                            labels.get("galleon.dev/version") != "1.0.0"
                        )
                        if moved and self.first_gone_at is None:
                            self.first_gone_at = now
                            # The same consistent LIST: the pulls as they stood then.
                            self.pulls_when_first_gone = {
                                q.metadata.name: q.status.phase if q.status else None
                                for q in pods
                                if (q.metadata.labels or {}).get(prepull.PULL_LABEL) == self.name
                            }
            time.sleep(0.1)


def test_a_rolling_upgrade_pulls_the_new_image_onto_the_nodes_before_its_first_batch(
    fleet: FleetHarness,
) -> None:
    fleet.scaleset("web", 6)
    fleet.wait_fleet("web", "1.0.0", 6)
    # Which references each node will run: instance i runs replica i % 2 of the region.
    before = {p.metadata.name: p.spec.nodeName for p in fleet.pods("web")}
    assert all(before.values())
    with PodLog(fleet, "web") as log:
        fleet.publish("1.0.2", [fleet.east])
        fleet.wait_upgrade("web", "Completed", timeout=120)
    digest = fleet.digest("1.0.2")
    after = {p.metadata.name: p.spec.containers[0].image for p in fleet.pods("web")}
    assert all(image.endswith("@" + digest) for image in after.values())
    # Each node pulled exactly the references its instances run now.
    wanted: dict[str, set[str]] = {}
    for pod_name, node in before.items():
        wanted.setdefault(node, set()).add(after[pod_name])
    pulled = {p["node"]: set(p["images"]) for p in log.pulls.values()}
    assert pulled == wanted, (pulled, wanted)
    assert all(p["revision"].startswith("1.0.2-") for p in log.pulls.values()), log.pulls
    # A pull pod runs to completion, as a kubelet runs `exit 0` (the test kit's kwok
    # stage imitates that): a terminal pod holds none of the node's pod slots.
    assert all("Succeeded" in p.get("phases", ()) for p in log.pulls.values()), log.pulls
    assert log.first_pull_at is not None and log.first_gone_at is not None
    assert log.first_pull_at <= log.first_gone_at, "an instance went before any pull"
    # In the LIST that first showed an instance going, every node had pulled already.
    assert log.pulls_when_first_gone.keys() == log.pulls.keys(), log.pulls_when_first_gone
    assert set(log.pulls_when_first_gone.values()) == {"Succeeded"}, log.pulls_when_first_gone
    # The upgrade is over: its pull pods go.
    wait_for(
        lambda: (
            not [
                p
                for p in fleet.kube.list(
                    Pod, namespace=fleet.namespace, labels={prepull.PULL_LABEL: "web"}
                )
            ]
        ),
        timeout=60,
        description="pull pods deleted after the upgrade",
    )
    assert not fleet.events("web", "RollingUpgradeFaulted")


def test_pre_pull_can_be_turned_off(fleet: FleetHarness) -> None:
    fleet.scaleset("db", 3, rolling={"prePullImages": False})
    fleet.wait_fleet("db", "1.0.0", 3)
    with PodLog(fleet, "db") as log:
        fleet.publish("1.0.2", [fleet.east])
        fleet.wait_upgrade("db", "Completed", timeout=120)
    assert log.pulls == {}
    stays_true(
        lambda: (
            not list(
                fleet.kube.list(Pod, namespace=fleet.namespace, labels={prepull.PULL_LABEL: "db"})
            )
        ),
        duration=2,
        description="no pull pod",
    )
