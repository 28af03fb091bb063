"""Every Grafana panel query, dashboard variable and alert of the chart refers to metrics and
labels the operator really exposes: its /metrics is scraped during and after a
real rollout (and a replication that fails for a region), promtool lints each scrape
(`promtool check metrics`: names, suffixes, units), then each query, parsed by
a real Prometheus (/api/v1/parse_query of the server hack/prometheus.sh builds), is
checked against the samples seen (galleon_testkit.promql walks Prometheus' tree).
The checks themselves are tested first, on queries that must pass and must fail.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client

from galleon_testkit.binaries import MissingBinaries
from galleon_testkit.chart import CHART
from galleon_testkit.cluster_fixtures import unavailable
from galleon_testkit.fleets import FleetHarness, push_source
from galleon_testkit.prometheus import (
    DASHBOARD,
    InvalidQuery,
    PrometheusServer,
    chart_rule_groups,
    dashboard_queries,
    dashboard_variable_queries,
    grafana_to_promql,
    promtool,
)
from galleon_testkit.promql import problems, scrape_labels
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import wait_for
from galleon_testkit.world import World

pytestmark = pytest.mark.integration
#: A scrape with a counter and a histogram, for the checks' own tests.
SCRAPE = """# HELP galleon_rollouts_total Rollouts.
# TYPE galleon_rollouts_total counter
galleon_rollouts_total{namespace="a",result="Completed"} 1.0
# HELP galleon_rollout_duration_seconds Durations.
# TYPE galleon_rollout_duration_seconds histogram
galleon_rollout_duration_seconds_bucket{le="10.0",result="Completed"} 1.0
galleon_rollout_duration_seconds_bucket{le="+Inf",result="Completed"} 1.0
galleon_rollout_duration_seconds_count{result="Completed"} 1.0
galleon_rollout_duration_seconds_sum{result="Completed"} 3.0
"""


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping nothing: the parser of every query checked here."""
    try:
        server = PrometheusServer(tmp_path_factory.mktemp("prometheus-parser"))
    except MissingBinaries as error:
        unavailable(str(error))
        raise
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("sum by (result) (increase(galleon_rollouts_total[5m]))", [], id="all-there"),
        pytest.param(
            "histogram_quantile(0.5, sum by (le) (rate(galleon_rollout_duration_seconds_bucket"
            '{result=~"Comp.*"}[5m])))',
            [],
            id="histogram",
        ),
        pytest.param(
            'galleon_rollouts_total{region="x"}',
            ["galleon_rollouts_total has no label region"],
            id="matcher-label",
        ),
        pytest.param(
            "sum by (scaleset) (galleon_rollouts_total)",
            ["sum by (scaleset): no series under it has label scaleset"],
            id="grouping-label",
        ),
        pytest.param(
            "sum by (namespace) (galleon_rollouts_total) "
            "+ on (namespace) sum by (le) (galleon_rollout_duration_seconds_bucket)",
            ["+ on (namespace): the right side has no label namespace"],
            id="matching-label-per-side",
        ),
        pytest.param(
            "sum by (le) (galleon_rollouts_total)",
            ["sum by (le): no series under it has label le"],
            id="grouping-label-of-another-metric",
        ),
        pytest.param(
            "rate(galleon_missing_total[5m])", ["no samples of galleon_missing_total"], id="metric"
        ),
        pytest.param(
            'sum by (region) (label_replace(galleon_rollouts_total, "region", "x", "", ""))',
            [],
            id="label-replace-adds",
        ),
        pytest.param("vector(1)", ["the query names no metric"], id="no-metric"),
    ],
)
def test_the_checks_name_what_the_scrape_lacks(
    prometheus: PrometheusServer, query: str, expected: list[str]
) -> None:
    assert problems(prometheus.parse_query(query), scrape_labels(SCRAPE)) == expected


def test_a_query_prometheus_cannot_parse_is_refused(prometheus: PrometheusServer) -> None:
    with pytest.raises(InvalidQuery, match="parse error"):
        prometheus.parse_query("sum by (result (galleon_rollouts_total)")


def test_the_chart_ships_the_documented_dashboard() -> None:
    assert (CHART / "files" / "dashboards" / "galleon.json").read_text() == DASHBOARD.read_text()


def test_dashboard_and_alert_queries_match_the_real_metrics(
    control_plane: Any,
    kube: Client,
    namespace: str,
    registry_factory: Callable[[int], list[Registry]],
    operator: Any,
    prometheus: PrometheusServer,
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

    for text in scrapes:  # promtool lints the names and types of what the operator exports
        linted = promtool("check", "metrics", stdin=text)
        assert linted.returncode == 0, linted.stdout + linted.stderr
    seen: dict[str, set[str]] = {}
    for text in scrapes:
        for name, labels in scrape_labels(text).items():
            seen.setdefault(name, set()).update(labels)
    # As Grafana sends them: a variable matching everything ("All"), a 5m rate interval.
    queries = [
        (title, grafana_to_promql(expr, rate_interval="5m"))
        for title, expr in dashboard_queries() + dashboard_variable_queries()
    ]
    queries += [
        (rule["alert"], rule["expr"])
        for group in chart_rule_groups()
        for rule in group["rules"]
        if rule["alert"] != "GalleonOperatorDown"
    ]
    assert len(queries) >= 20
    failures = {
        title: issues
        for title, expr in queries
        if (issues := problems(prometheus.parse_query(expr), seen))
    }
    assert failures == {}, json.dumps(failures, indent=2)
