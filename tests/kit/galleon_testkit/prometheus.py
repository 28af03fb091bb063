"""promtool and a real Prometheus server, built by hack/prometheus.sh, for the chart's
alert rules and the Grafana dashboard's queries.

Example:
    rules = write_rule_file(tmp_path / "galleon-rules.yaml")      # the chart's alerts
    promtool("check", "rules", str(rules))
    server = PrometheusServer(tmp_path / "prom", targets=["127.0.0.1:8080"], rule_files=[rules])
    server.start()
    server.query('up{job="galleon-metrics"}')      # the `result` list of /api/v1/query
    server.parse_query("rate(x[5m])")              # Prometheus' syntax tree of a query
    server.stop()

Like galleon_testkit.binaries, nothing here builds: a missing binary raises
MissingBinaries, which callers turn into a skip (or a failure under CI=true).
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from galleon_testkit.binaries import REPO_ROOT, MissingBinaries
from galleon_testkit.chart import of_kind, render
from galleon_testkit.processes import ManagedProcess, free_port, http_ok

SCRIPT = REPO_ROOT / "hack" / "prometheus.sh"
DASHBOARD = REPO_ROOT / "docs" / "dashboards" / "galleon.json"
#: The `job` label the chart's alerts expect: the metrics Service's name, as the
#: ServiceMonitor sets it (release "galleon").
JOB = "galleon-metrics"


def prometheus_bin_dir() -> Path:
    """The folder holding `prometheus` and `promtool` (`hack/prometheus.sh --print`)."""
    try:
        completed = subprocess.run(
            [str(SCRIPT), "--print"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise MissingBinaries(f"could not run {SCRIPT} --print: {error}") from error
    if completed.returncode != 0:
        reason = completed.stderr.strip() or completed.stdout.strip()
        raise MissingBinaries(f"prometheus is not built ({reason}); run `hack/prometheus.sh`")
    return Path(completed.stdout.strip().splitlines()[-1])


def promtool(
    *args: str, cwd: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run promtool (`stdin` on its standard input, e.g. a scrape for `check metrics`);
    the result is returned whatever the exit code (callers check)."""
    return subprocess.run(
        [str(prometheus_bin_dir() / "promtool"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        input=stdin,
    )


def chart_rule_groups(extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The `spec.groups` of the chart's PrometheusRule: a Prometheus rule file's content."""
    documents = render(["--set", "prometheusRule.enabled=true", *extra])
    groups: list[dict[str, Any]] = of_kind(documents, "PrometheusRule")[0]["spec"]["groups"]
    return groups


def write_rule_file(
    path: Path, *, extra: Sequence[str] = (), for_override: str | None = None
) -> Path:
    """Write the chart's alerts as a rule file Prometheus loads; return `path`.

    `for_override` replaces every rule's `for:` (tests cannot wait ten minutes); the
    expressions, labels and annotations stay the chart's.
    """
    groups = chart_rule_groups(extra)
    if for_override is not None:
        for group in groups:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = for_override
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False, width=1000))
    return path


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, query) of every target of the Grafana dashboard galleon ships."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


#: A dashboard variable's query in Grafana's Prometheus syntax: label_values(selector, label).
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def dashboard_variable_queries() -> list[tuple[str, str]]:
    """("variable NAME", query) of every `label_values(selector, label)` variable of the
    dashboard, as the PromQL that returns the same label values.

    Example: label_values(galleon_scaleset_capacity, namespace) becomes
    ("variable namespace", "group by (namespace) (galleon_scaleset_capacity)").
    """
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        match = LABEL_VALUES.match(variable["query"].strip())
        if match is None:
            raise ValueError(f"variable {variable['name']}: not label_values(): {variable}")
        query = f"group by ({match['label']}) ({match['selector']})"
        found.append((f"variable {variable['name']}", query))
    return found


def grafana_to_promql(
    expr: str, variables: Mapping[str, str] | None = None, *, rate_interval: str = "1m"
) -> str:
    """A dashboard query as Grafana sends it to Prometheus: its variables substituted.

    `$__rate_interval` (and `$__interval`, `$__range`) become `rate_interval`; a
    dashboard variable `$name` (or `${name}`) becomes `variables[name]` (a Kubernetes
    name: nothing in it needs regex quoting), or `.*` (the dashboard's "All") when
    not given.

    Example: grafana_to_promql('rate(x{namespace=~"$namespace"}[$__rate_interval])',
    {"namespace": "team-a"}) == 'rate(x{namespace=~"team-a"}[1m])'
    """
    values = variables or {}
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", rate_interval, expr)

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, ".*")

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


class InvalidQuery(ValueError):
    """Prometheus refused a query (the message is Prometheus' own, with the position)."""


class PrometheusServer:
    """A Prometheus server on 127.0.0.1 scraping `targets` every second, TSDB in `folder`.

    With no targets it scrapes nothing: a parser of PromQL (`parse_query`)."""

    def __init__(
        self,
        folder: Path,
        *,
        targets: Sequence[str] = (),
        rule_files: Sequence[Path] = (),
        job: str = JOB,
        interval: str = "1s",
    ) -> None:
        self.folder = folder
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [
                {
                    "job_name": job,
                    "scrape_timeout": interval,
                    "static_configs": [{"targets": list(targets)}],
                }
            ]
            if targets
            else [],
        }
        self.config = folder / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))
        self.process = ManagedProcess(
            "prometheus",
            [
                str(prometheus_bin_dir() / "prometheus"),
                f"--config.file={self.config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            folder / "prometheus.log",
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> PrometheusServer:
        self.process.start()
        self.process.wait_until(lambda: http_ok(f"{self.url}/-/ready"), timeout=timeout)
        return self

    def stop(self) -> None:
        self.process.stop()

    def api(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET /api/v1/`path`; return its `data` (raises on an error status: InvalidQuery
        when Prometheus calls the request's data bad, e.g. a query it cannot parse)."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"{self.url}/api/v1/{path}{query}", timeout=30) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = json.loads(error.read() or b"{}")
            if body.get("errorType") == "bad_data":
                raise InvalidQuery(body.get("error", "")) from error
            raise RuntimeError(f"/api/v1/{path}: HTTP {error.code} {body}") from error
        if body.get("status") != "success":
            raise RuntimeError(f"/api/v1/{path}: {body}")
        return body["data"]

    def parse_query(self, expr: str) -> dict[str, Any]:
        """Prometheus' syntax tree of `expr` (/api/v1/parse_query), as JSON: nodes with a
        `type` (vectorSelector, matrixSelector, aggregation, binaryExpr, call, ...);
        raises InvalidQuery with Prometheus' message when `expr` is not PromQL."""
        tree: dict[str, Any] = self.api("parse_query", {"query": expr})
        return tree

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar, as one element) `expr` evaluates to now."""
        data = self.api("query", {"query": expr})
        if data["resultType"] in ("scalar", "string"):
            return [{"value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing) with their labels and `state`."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def target_health(self) -> list[str]:
        return [t["health"] for t in self.api("targets")["activeTargets"]]
