"""A real Prometheus server (built by hack/prometheus.sh) scrapes the operator every
second through a rollout, a rollout that faults and a replication that fails for a
region: afterwards every Grafana panel query and dashboard variable returns data through
/api/v1/query (but "Reconcile errors", see EMPTY_WHEN_HEALTHY), and the chart's
GalleonRolloutFaulted and GalleonReplicationFailed alerts fire through /api/v1/alerts
while GalleonOperatorDown does not.

The rules are the chart's, rendered by helm, with every `for:` shortened to 5s (the
test cannot wait the chart's ten minutes); tests/promtool/ checks the real durations.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client

from galleon_testkit.binaries import MissingBinaries
from galleon_testkit.cluster_fixtures import unavailable
from galleon_testkit.fleets import FleetHarness, push_source
from galleon_testkit.prometheus import (
    PrometheusServer,
    dashboard_queries,
    dashboard_variable_queries,
    grafana_to_promql,
    write_rule_file,
)
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import WaitTimeout, wait_for
from galleon_testkit.world import World

pytestmark = pytest.mark.integration
#: The dashboard's `$__rate_interval` here: wide enough to hold the samples of the run.
RATE_INTERVAL = "2m"
#: Panels that show data only when something breaks in a way this run does not cause
#: (a reconciliation that raises): their queries must still run, on series that exist.
EMPTY_WHEN_HEALTHY = {"Reconcile errors": 'galleon_reconcile_total{result="success"}'}


def firing(server: PrometheusServer, name: str) -> list[dict[str, Any]]:
    return [
        alert
        for alert in server.alerts()
        if alert["labels"].get("alertname") == name and alert["state"] == "firing"
    ]


def test_dashboard_panels_return_data_and_alerts_fire_on_a_real_prometheus(
    control_plane: Any,
    kube: Client,
    namespace: str,
    registry_factory: Callable[[int], list[Registry]],
    operator: Any,
    tmp_path: Path,
) -> None:
    try:
        rules = write_rule_file(tmp_path / "galleon-rules.yaml", for_override="5s")
        server = PrometheusServer(
            tmp_path / "prometheus",
            targets=[f"127.0.0.1:{operator.metrics_port}"],
            rule_files=[rules],
        )
    except MissingBinaries as error:
        unavailable(str(error))
        return
    world = World(kube, namespace, registry_factory(4))
    fleet = FleetHarness.with_versions(world, tmp_path, control_plane.client, ("1.0.0", "1.0.2"))
    asyncio.run(push_source(world.source, fleet.images["1.0.0"], "1.0.5"))
    server.start()
    try:
        wait_for(
            lambda: server.target_health() == ["up"],
            timeout=30,
            description="Prometheus scraping the operator",
        )
        fleet.publish("1.0.0", [fleet.east, fleet.west])
        fleet.scaleset("prom", 5, annotations={"galleon.test/ready-delay": "2s"})
        # 1.0.2 never gets Ready in "bad": its upgrade faults (and is rolled back).
        fleet.scaleset(
            "bad",
            5,
            annotations={
                "galleon.test/ready-delay": "1s",
                "galleon.test/never-ready-images": fleet.digest("1.0.2"),
            },
        )
        fleet.wait_fleet("prom", "1.0.0", 5)
        fleet.wait_fleet("bad", "1.0.0", 5)
        # East is asked for more copies than it has registries: replication errors.
        world.version(
            "os-1-0-2",
            "1.0.2",
            [{"name": fleet.east, "regionalReplicaCount": 2}, {"name": fleet.west}],
        )
        world.wait_state("os-1-0-2", "Completed", timeout=90)
        # West cannot hold three copies: this version stays Failed there.
        world.version("os-1-0-5", "1.0.5", [{"name": fleet.west, "regionalReplicaCount": 3}])
        fleet.wait_upgrade("prom", "Completed")
        fleet.wait_upgrade("bad", "Faulted", timeout=120)

        variables = {"namespace": namespace}  # every ScaleSet of the test: "All"
        queries = [
            (title, grafana_to_promql(expr, variables, rate_interval=RATE_INTERVAL))
            for title, expr in dashboard_queries() + dashboard_variable_queries()
            if title not in EMPTY_WHEN_HEALTHY
        ]
        assert len(queries) >= 20
        for title, selector in EMPTY_WHEN_HEALTHY.items():
            # Prometheus accepts the panel's query; the series it filters are there.
            expr = next(expr for name, expr in dashboard_queries() if name == title)
            server.query(grafana_to_promql(expr, variables, rate_interval=RATE_INTERVAL))
            assert server.query(selector), f"{title}: no {selector}"

        def empty_panels() -> dict[str, str]:
            return {title: expr for title, expr in queries if not server.query(expr)}

        empty: dict[str, str] = {}

        def all_panels_have_data() -> bool:
            empty.clear()
            empty.update(empty_panels())
            return not empty

        try:
            wait_for(all_panels_have_data, timeout=60, description="data in every panel")
        except WaitTimeout:
            pytest.fail(f"panels without data: {json.dumps(empty, indent=2)}", pytrace=False)

        faulted = wait_for(
            lambda: firing(server, "GalleonRolloutFaulted"),
            timeout=60,
            description="GalleonRolloutFaulted firing",
        )
        assert {(a["labels"]["namespace"], a["labels"]["scaleset"]) for a in faulted} == {
            (namespace, "bad")
        }
        failed = wait_for(
            lambda: firing(server, "GalleonReplicationFailed"),
            timeout=60,
            description="GalleonReplicationFailed firing",
        )
        assert {
            (a["labels"]["namespace"], a["labels"]["version"], a["labels"]["region"])
            for a in failed
        } >= {(namespace, "1.0.5", fleet.west)}
        assert all(a["labels"]["severity"] == "warning" for a in failed)
        assert "to " + fleet.west + " failed" in " ".join(
            a["annotations"]["summary"] for a in failed
        )
        # The operator is up, so this alert must be silent (it fires after 5s otherwise).
        assert firing(server, "GalleonOperatorDown") == []
        assert server.query('up{job="galleon-metrics"} == 1')
    finally:
        server.stop()
        world.cleanup()
