"""Which metric names and label names a PromQL expression refers to, and whether a
scrape of /metrics offers them: the dashboard's and alerts' queries are checked
against the operator's real metrics this way.

Not a PromQL parser: it finds selectors (`name{matchers}` and bare `galleon_*`
names) and grouping clauses (`by`, `without`, `on`, `ignoring`), which is what a
query needs from the metrics to return anything.

Example:
    refs = references('sum by (region) (rate(galleon_replication_bytes_total[5m]))')
    refs.metrics == {"galleon_replication_bytes_total": set()}; refs.grouping == {"region"}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

GRAFANA_VARIABLES = re.compile(r"\$__(rate_interval|interval|range)")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
BARE = re.compile(r"\b(galleon_[a-zA-Z0-9_:]*)\b(?!\s*\{)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


@dataclass
class References:
    metrics: dict[str, set[str]] = field(default_factory=dict)
    """Metric name → label names its matchers use."""
    grouping: set[str] = field(default_factory=set)


def references(expression: str) -> References:
    text = GRAFANA_VARIABLES.sub("5m", expression)
    found = References()
    for name, matchers in SELECTOR.findall(text):
        labels = set(MATCHER.findall(STRING.sub('""', matchers)))
        found.metrics.setdefault(name, set()).update(labels)
    for name in BARE.findall(SELECTOR.sub("", text)):
        found.metrics.setdefault(name, set())
    for group in GROUPING.findall(text):
        found.grouping.update(g.strip() for g in group.split(",") if g.strip())
    return found


def scrape_labels(text: str) -> dict[str, set[str]]:
    """Sample name → label names seen on its samples, from a /metrics scrape."""
    seen: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            seen.setdefault(sample.name, set()).update(sample.labels)
    return seen


def problems(expression: str, seen: dict[str, set[str]]) -> list[str]:
    """What `expression` needs that the scrape does not offer (empty: all there)."""
    refs = references(expression)
    issues = []
    available: set[str] = set()
    for name, labels in refs.metrics.items():
        if name not in seen:
            issues.append(f"no samples of {name}")
            continue
        available |= seen[name]
        issues.extend(f"{name} has no label {label}" for label in sorted(labels - seen[name]))
    issues.extend(
        f"no metric of the query has label {label}"
        for label in sorted(refs.grouping - available)
        if refs.metrics and available
    )
    if not refs.metrics:
        issues.append("the query names no metric")
    return issues
