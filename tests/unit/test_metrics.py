"""Label cardinality of the operator's metrics (`galleon.metrics`): a `region` label
only names a Region that exists, a deleted Region's series go, a version's state
series follow its status and go with it.

The metrics are the process's own (prometheus-client's default registry), so each
test uses names of its own and reads the samples the registry would serve.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from galleon import metrics
from galleon.metrics import UNKNOWN_REGION

NS, DEFINITION = "team-a", "os"


def samples(name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of metric `name` now: sorted labels → value."""
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in REGISTRY.collect()
        for sample in family.samples
        if sample.name == name
    }


def labelled(region: str) -> list[str]:
    """The galleon_* samples that carry `region`."""
    return sorted(
        sample.name
        for family in REGISTRY.collect()
        for sample in family.samples
        if sample.name.startswith("galleon_") and sample.labels.get("region") == region
    )


def states(version: str) -> dict[str, str]:
    """Region label → the state whose series is 1, for one version."""
    return {
        dict(labels)["region"]: dict(labels)["state"]
        for labels, value in samples("galleon_image_version_replication_state").items()
        if dict(labels)["version"] == version and value == 1
    }


@pytest.fixture
def region(request: pytest.FixtureRequest) -> Iterator[str]:
    """A Region (of this test's name) the Region controller has seen."""
    name = f"r-{request.node.name.lower().replace('_', '-')}"[:63]
    metrics.region_exists(name)
    yield name
    metrics.forget_region(name)


@pytest.mark.parametrize(
    ("known", "asked", "label"),
    [
        pytest.param(True, "eastus2", "eastus2", id="an-existing-region-is-its-name"),
        pytest.param(False, "made-up-by-a-tenant", UNKNOWN_REGION, id="an-invented-one-is-fixed"),
        pytest.param(False, "", UNKNOWN_REGION, id="an-empty-name-is-fixed"),
    ],
)
def test_region_label(known: bool, asked: str, label: str) -> None:
    if known:
        metrics.region_exists(asked)
    try:
        assert metrics.region_label(asked) == label
    finally:
        metrics.forget_region(asked)


def test_unknown_region_cannot_be_a_region_name() -> None:
    # A Region's name is a DNS subdomain: lower case letters, digits, '-' and '.'.
    assert not set(UNKNOWN_REGION) <= set("abcdefghijklmnopqrstuvwxyz0123456789-.")


def test_a_deleted_region_takes_every_series_labelled_with_it(region: str) -> None:
    metrics.REPLICATED_BYTES.labels(metrics.region_label(region), "copied").inc(10)
    metrics.REPLICATION_DURATION.labels(metrics.region_label(region)).observe(3)
    metrics.REPLICATION_ERRORS.labels(metrics.region_label(region), "Unavailable").inc()
    metrics.set_registries_reachable(region, 2)
    metrics.set_replication_states(NS, DEFINITION, "1.0.0", {region: "Completed"})
    assert {name.split("_bucket")[0] for name in labelled(region)} >= {
        "galleon_replication_bytes_total",
        "galleon_replication_duration_seconds",
        "galleon_replication_errors_total",
        "galleon_region_registries_reachable",
        "galleon_image_version_replication_state",
    }

    metrics.forget_region(region)
    assert labelled(region) == []
    # A pass or a check still running when the Region went cannot bring them back.
    metrics.set_registries_reachable(region, 2)
    metrics.REPLICATED_BYTES.labels(metrics.region_label(region), "copied").inc(10)
    metrics.set_replication_states(NS, DEFINITION, "1.0.0", {region: "Failed"})
    assert labelled(region) == []
    assert states("1.0.0") == {UNKNOWN_REGION: "Failed"}
    metrics.forget_image_version(NS, DEFINITION, "1.0.0")


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param(
            {"known": "Completed", "gone-1": "Failed"},
            {"known": "Completed", UNKNOWN_REGION: "Failed"},
            id="an-invented-region-is-under-the-fixed-label",
        ),
        pytest.param(
            {"known": "Replicating", "gone-1": "Failed", "gone-2": "Failed", "gone-3": "Failed"},
            {"known": "Replicating", UNKNOWN_REGION: "Failed"},
            id="many-invented-regions-are-one-series",
        ),
        pytest.param(
            {"gone-1": "Completed", "gone-2": "Queued"},
            {UNKNOWN_REGION: "Queued"},
            id="a-shared-series-shows-the-least-done-state",
        ),
        pytest.param({}, {}, id="no-line-no-series"),
    ],
)
def test_replication_states_label_only_existing_regions(
    region: str, lines: dict[str, str], expected: dict[str, str]
) -> None:
    rename = {"known": region}
    metrics.set_replication_states(
        NS, DEFINITION, "2.0.0", {rename.get(r, r): state for r, state in lines.items()}
    )
    try:
        assert states("2.0.0") == {rename.get(r, r): state for r, state in expected.items()}
    finally:
        metrics.forget_image_version(NS, DEFINITION, "2.0.0")
    assert states("2.0.0") == {}


def test_state_series_follow_the_status_and_go_with_the_version(region: str) -> None:
    metrics.set_replication_states(NS, DEFINITION, "3.0.0", {region: "Queued", "gone": "Failed"})
    assert states("3.0.0") == {region: "Queued", UNKNOWN_REGION: "Failed"}
    # The invented region was dropped from the spec: its series goes, one-hot stays one-hot.
    metrics.set_replication_states(NS, DEFINITION, "3.0.0", {region: "Completed"})
    assert states("3.0.0") == {region: "Completed"}
    series = [
        dict(labels)
        for labels in samples("galleon_image_version_replication_state")
        if dict(labels)["version"] == "3.0.0"
    ]
    assert {s["region"] for s in series} == {region}
    assert len(series) == len(metrics.REGION_STATES)
    # One region's series removed (its copies were deleted), then the whole version.
    metrics.forget_replication_state(NS, DEFINITION, "3.0.0", region)
    assert states("3.0.0") == {}
    metrics.set_replication_states(NS, DEFINITION, "3.0.0", {region: "Completed"})
    metrics.forget_image_version(NS, DEFINITION, "3.0.0")
    assert not [
        labels
        for labels in samples("galleon_image_version_replication_state")
        if dict(labels)["version"] == "3.0.0"
    ]
