"""Every Grafana panel query and every alert of the chart refers to metrics and
labels the operator really exposes: its /metrics is scraped during and after a
real rollout (and a replication that fails for a region), then each query is
checked against the samples seen.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client

from galleon_testkit.binaries import REPO_ROOT
from galleon_testkit.chart import CHART, of_kind, render
from galleon_testkit.fleets import FleetHarness, push_source
from galleon_testkit.promql import problems, scrape_labels
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import wait_for
from galleon_testkit.world import World

pytestmark = pytest.mark.integration
DASHBOARD = REPO_ROOT / "docs" / "dashboards" / "galleon.json"


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def test_the_chart_ships_the_documented_dashboard() -> None:
    assert (CHART / "files" / "dashboards" / "galleon.json").read_text() == DASHBOARD.read_text()


def test_dashboard_and_alert_queries_match_the_real_metrics(
    control_plane: Any,
    kube: Client,
    namespace: str,
    registry_factory: Callable[[int], list[Registry]],
    operator: Any,
    tmp_path: Path,
) -> None:
    world = World(kube, namespace, registry_factory(4))
    fleet = FleetHarness.with_versions(world, tmp_path, control_plane.client, ("1.0.0", "1.0.2"))
    asyncio.run(push_source(world.source, fleet.images["1.0.0"], "1.0.5"))
    try:
        fleet.publish("1.0.0", [fleet.east, fleet.west])
        fleet.scaleset("dash", 5, annotations={"galleon.test/ready-delay": "2s"})
        fleet.wait_fleet("dash", "1.0.0", 5)
        # A region asked for more copies than it has registries fails: errors by reason.
        world.version(
            "os-1-0-2",
            "1.0.2",
            [{"name": fleet.east, "regionalReplicaCount": 2}, {"name": fleet.west}],
        )
        world.wait_state("os-1-0-2", "Completed", timeout=90)
        world.version("os-1-0-5", "1.0.5", [{"name": fleet.west, "regionalReplicaCount": 3}])
        scrapes = []

        def mid_rollout() -> bool:
            upgrade = fleet.status("dash").get("rollingUpgrade") or {}
            running = (upgrade.get("runningStatus") or {}).get("code") == "RollingForward"
            if running and upgrade.get("currentBatch", 0) >= 2:
                scrapes.append(urllib.request.urlopen(operator.metrics_url).read().decode())
                return True
            return False

        wait_for(mid_rollout, timeout=90, description="the rollout's second batch", interval=0.2)
        fleet.wait_upgrade("dash", "Completed")
        wait_for(
            lambda: (
                "galleon_replication_errors_total{"
                in urllib.request.urlopen(operator.metrics_url).read().decode()
            ),
            timeout=60,
            description="a replication error counted",
        )
        scrapes.append(urllib.request.urlopen(operator.metrics_url).read().decode())
    finally:
        world.cleanup()

    seen: dict[str, set[str]] = {}
    for text in scrapes:
        for name, labels in scrape_labels(text).items():
            seen.setdefault(name, set()).update(labels)
    queries = dashboard_queries()
    documents = render(["--set", "prometheusRule.enabled=true"])
    rules = of_kind(documents, "PrometheusRule")[0]["spec"]["groups"][0]["rules"]
    queries += [
        (rule["alert"], rule["expr"]) for rule in rules if rule["alert"] != "GalleonOperatorDown"
    ]
    assert len(queries) >= 20
    failures = {title: issues for title, expr in queries if (issues := problems(expr, seen))}
    assert failures == {}, json.dumps(failures, indent=2)
