"""Whether a scrape of /metrics offers what a PromQL query needs: the dashboard's and
the alerts' queries are checked against the operator's real metrics this way.

Rules of this module: nothing here parses PromQL. The query's syntax tree is
Prometheus' own, the JSON its `/api/v1/parse_query` answers
(`galleon_testkit.prometheus.PrometheusServer.parse_query`); this module only walks
it, and a scrape is read by prometheus-client's parser. What it checks is what a
query needs from the metrics to return anything, which no Prometheus tool checks:
every selector's metric has samples, every label a matcher names is on them, and
the labels of every `by (...)` and `on (...)` clause are on the series under it.

Example:
    tree = server.parse_query('sum by (region) (rate(galleon_replication_bytes_total[5m]))')
    problems(tree, scrape_labels(text)) == []      # or ["sum by (region): ..."]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

#: Node types of /api/v1/parse_query that select series by metric name and matchers.
SELECTORS = ("vectorSelector", "matrixSelector")
#: Functions that add the label named by their second argument (a string literal).
LABEL_WRITERS = ("label_replace", "label_join")


def scrape_labels(text: str) -> dict[str, set[str]]:
    """Sample name → label names seen on its samples, from a /metrics scrape."""
    seen: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            seen.setdefault(sample.name, set()).update(sample.labels)
    return seen


def selectors(tree: Any) -> Iterator[dict[str, Any]]:
    """Every vector and matrix selector of a parse_query tree, depth first."""
    if isinstance(tree, dict):
        if tree.get("type") in SELECTORS:
            yield tree
        for value in tree.values():
            yield from selectors(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from selectors(value)


def problems(tree: dict[str, Any], seen: dict[str, set[str]]) -> list[str]:
    """What the query of `tree` needs that the scrape `seen` does not offer (empty: all
    there).

    Example: for `sum by (scaleset) (galleon_rollouts_total)` and a scrape whose
    galleon_rollouts_total has only `result`:
    ["sum by (scaleset): no series under it has label scaleset"].
    """
    issues: list[str] = []
    if not any(selector["name"] for selector in selectors(tree)):
        issues.append("the query names no metric")
    _labels(tree, seen, issues)
    return issues


def _labels(node: dict[str, Any], seen: dict[str, set[str]], issues: list[str]) -> set[str] | None:
    """The label names the series of `node` can carry, appending what is missing to
    `issues`; None for a scalar or string, or when they are unknown (a metric without
    samples, already reported), so that nothing is reported twice."""
    kind = node["type"]
    if kind in SELECTORS:
        return _selector_labels(node, seen, issues)
    if kind == "aggregation":
        return _aggregation_labels(node, seen, issues)
    if kind == "binaryExpr":
        return _binary_labels(node, seen, issues)
    if kind == "call":
        return _call_labels(node, seen, issues)
    if kind in ("parenExpr", "unaryExpr", "subquery"):
        return _labels(node["expr"], seen, issues)
    return None  # numberLiteral, stringLiteral


def _selector_labels(
    node: dict[str, Any], seen: dict[str, set[str]], issues: list[str]
) -> set[str] | None:
    name = node["name"]
    if not name:  # why: `{__name__=~"..."}` names no one metric to check
        return None
    if name not in seen:
        issues.append(f"no samples of {name}")
        return None
    used = {matcher["name"] for matcher in node["matchers"]} - {"__name__"}
    issues.extend(f"{name} has no label {label}" for label in sorted(used - seen[name]))
    return set(seen[name])


def _aggregation_labels(
    node: dict[str, Any], seen: dict[str, set[str]], issues: list[str]
) -> set[str] | None:
    if node["param"] is not None:
        _labels(node["param"], seen, issues)
    inner = _labels(node["expr"], seen, issues)
    grouping = set(node["grouping"])
    if node["without"]:
        return None if inner is None else inner - grouping
    if inner is not None:
        clause = f"{node['op']} by ({', '.join(node['grouping'])})"
        issues.extend(
            f"{clause}: no series under it has label {label}" for label in sorted(grouping - inner)
        )
    return grouping


def _binary_labels(
    node: dict[str, Any], seen: dict[str, set[str]], issues: list[str]
) -> set[str] | None:
    left = _labels(node["lhs"], seen, issues)
    right = _labels(node["rhs"], seen, issues)
    matching = node["matching"]
    if matching and matching["on"] and matching["labels"]:
        clause = f"{node['op']} on ({', '.join(matching['labels'])})"
        for side, labels in (("left", left), ("right", right)):
            if labels is not None:
                issues.extend(
                    f"{clause}: the {side} side has no label {label}"
                    for label in sorted(set(matching["labels"]) - labels)
                )
    if matching and matching["include"]:
        # group_left(...) copies labels from the right side, group_right(...) from the left.
        one = right if matching["card"] == "many-to-one" else left
        if one is not None:
            issues.extend(
                f"{node['op']} group ({', '.join(matching['include'])}): no label {label}"
                for label in sorted(set(matching["include"]) - one)
            )
    if matching and matching["card"] == "one-to-many":
        return right
    return left if left is not None else right


def _call_labels(
    node: dict[str, Any], seen: dict[str, set[str]], issues: list[str]
) -> set[str] | None:
    vectors = [labels for arg in node["args"] if (labels := _labels(arg, seen, issues)) is not None]
    function = node["func"]
    if function["returnType"] != "vector":
        return None
    if not any(arg_type in ("vector", "matrix") for arg_type in function["argTypes"]):
        return set()  # vector(1), time()-like: a series without labels
    if not vectors:
        return None
    labels = set(vectors[0])
    if function["name"] in LABEL_WRITERS and node["args"][1]["type"] == "stringLiteral":
        labels.add(node["args"][1]["val"])
    if function["name"] == "histogram_quantile":
        labels.discard("le")
    return labels
