"""The PromQL reference finder used to check dashboard queries against /metrics."""

from __future__ import annotations

from galleon_testkit.promql import problems, references, scrape_labels

SCRAPE = """# HELP galleon_rollouts_total Rollouts.
# TYPE galleon_rollouts_total counter
galleon_rollouts_total{result="Completed"} 1.0
# HELP galleon_rollout_duration_seconds Durations.
# TYPE galleon_rollout_duration_seconds histogram
galleon_rollout_duration_seconds_bucket{le="10.0",result="Completed"} 1.0
galleon_rollout_duration_seconds_bucket{le="+Inf",result="Completed"} 1.0
galleon_rollout_duration_seconds_count{result="Completed"} 1.0
galleon_rollout_duration_seconds_sum{result="Completed"} 3.0
"""


def test_selectors_matchers_and_grouping_are_found() -> None:
    refs = references(
        "histogram_quantile(0.9, sum by (le, result) "
        '(rate(galleon_rollout_duration_seconds_bucket{result=~"Comp.*"}[$__rate_interval])))'
    )
    assert refs.metrics == {"galleon_rollout_duration_seconds_bucket": {"result"}}
    assert refs.grouping == {"le", "result"}
    bare = references("galleon_rollouts_total > on (namespace) galleon_x")
    assert set(bare.metrics) == {"galleon_rollouts_total", "galleon_x"}


def test_problems_name_what_the_scrape_lacks() -> None:
    seen = scrape_labels(SCRAPE)
    assert problems("sum by (result) (increase(galleon_rollouts_total[5m]))", seen) == []
    assert (
        problems(
            "histogram_quantile(0.5, sum by (le) "
            "(rate(galleon_rollout_duration_seconds_bucket[5m])))",
            seen,
        )
        == []
    )
    assert problems('galleon_rollouts_total{region="x"}', seen) == [
        "galleon_rollouts_total has no label region"
    ]
    assert problems("sum by (scaleset) (galleon_rollouts_total)", seen) == [
        "no metric of the query has label scaleset"
    ]
    assert problems("rate(galleon_missing_total[5m])", seen) == [
        "no samples of galleon_missing_total"
    ]
