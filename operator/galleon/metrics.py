"""Prometheus metrics of the operator, served on `--metrics-port` at /metrics.

Rules of this module: names follow Prometheus conventions (`galleon_` prefix, base
units, `_total` for counters, `_seconds`/`_bytes`); labels are bounded: namespace
and object names come from objects that exist (like kube-state-metrics), never from
free text, error messages or digests; series of deleted objects are removed
(`forget_*`).

A `region` label only ever names a Region that exists: an ImageVersion may name
any region in its spec, so every region label goes through `region_label`, which
gives `UNKNOWN_REGION` for a name the Region controller has not reported
(`region_exists`), and a deleted Region's series are removed (`forget_region`);
a pass still running when its Region goes counts what follows under
`UNKNOWN_REGION`, so it cannot bring the deleted Region's series back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from prometheus_client import Counter, Gauge, Histogram, start_http_server

REPLICATED_BYTES = Counter(
    "galleon_replication_bytes_total",
    "Bytes handled by replication, by target region and how (copied, skipped, mounted).",
    ["region", "mode"],
)
REPLICATION_DURATION = Histogram(
    "galleon_replication_duration_seconds",
    "Time from the start of a version's replication into a region until it completed.",
    ["region"],
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)
REPLICATIONS_IN_FLIGHT = Gauge(
    "galleon_replications_in_flight", "Image versions whose replication is running now."
)
REPLICATION_ERRORS = Counter(
    "galleon_replication_errors_total",
    "Replication errors by target region and reason (e.g. Unavailable, Unauthorized).",
    ["region", "reason"],
)
REPLICATION_STATE = Gauge(
    "galleon_image_version_replication_state",
    "1 for the current replication state of a version in a region, 0 for the others.",
    ["namespace", "image_definition", "version", "region", "state"],
)
RECONCILE_TOTAL = Counter(
    "galleon_reconcile_total", "Reconciliations by controller and result.", ["controller", "result"]
)
RECONCILE_DURATION = Histogram(
    "galleon_reconcile_duration_seconds",
    "Duration of one reconciliation, by controller.",
    ["controller"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
REGION_REGISTRIES_REACHABLE = Gauge(
    "galleon_region_registries_reachable",
    "Registry replica locations that answer, by region.",
    ["region"],
)

SCALESET_INSTANCES = Gauge(
    "galleon_scaleset_instances",
    "Instances of a scale set by image version and health (Healthy, Initializing, Unhealthy).",
    ["namespace", "scaleset", "version", "health"],
)
SCALESET_CAPACITY = Gauge(
    "galleon_scaleset_capacity", "Desired instances of a scale set.", ["namespace", "scaleset"]
)
SCALESET_UNHEALTHY_LIMIT = Gauge(
    "galleon_scaleset_unhealthy_instances_limit",
    "Most instances that may be unhealthy before an upgrade batch starts "
    "(maxUnhealthyInstancePercent of capacity).",
    ["namespace", "scaleset"],
)
ROLLOUT_IN_PROGRESS = Gauge(
    "galleon_rollout_in_progress",
    "1 while a rolling upgrade of the scale set is running (or rolling back), else 0.",
    ["namespace", "scaleset"],
)
ROLLOUT_PROGRESS = Gauge(
    "galleon_rollout_progress_ratio",
    "Share of the scale set's instances upgraded by the latest rolling upgrade (0 to 1).",
    ["namespace", "scaleset"],
)
ROLLOUT_BATCH = Gauge(
    "galleon_rollout_current_batch",
    "1-based batch of the latest rolling upgrade.",
    ["namespace", "scaleset"],
)
ROLLOUT_BATCHES = Gauge(
    "galleon_rollout_batches",
    "Batches the latest rolling upgrade needs in all.",
    ["namespace", "scaleset"],
)
ROLLOUT_STATE = Gauge(
    "galleon_rollout_state",
    "1 for the running status of the scale set's latest rolling upgrade (RollingForward, "
    "Completed, Faulted, Cancelled), 0 for the others.",
    ["namespace", "scaleset", "state"],
)
ROLLOUT_STATES = ("RollingForward", "Completed", "Faulted", "Cancelled")
ROLLOUTS = Counter(
    "galleon_rollouts_total",
    "Rolling upgrades that ended, by result (Completed, Faulted, Cancelled).",
    ["result"],
)
ROLLOUT_DURATION = Histogram(
    "galleon_rollout_duration_seconds",
    "Duration of rolling upgrades from start to end, by result.",
    ["result"],
    buckets=(10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200),
)
INSTANCE_UPGRADES = Counter(
    "galleon_instance_upgrades_total",
    "Instances upgraded by rolling upgrades, by result (Healthy, Unhealthy, RolledBack).",
    ["result"],
)
BUILDS = Counter(
    "galleon_image_builds_total",
    "Image builds that ended, by result (Succeeded, Unchanged, Failed) and failure reason.",
    ["namespace", "result", "reason"],
)
BUILD_DURATION = Histogram(
    "galleon_image_build_duration_seconds",
    "Time from an image build's start to its end, by result.",
    ["result"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 14400),
)
BUILD_STEP_DURATION = Histogram(
    "galleon_image_build_step_duration_seconds",
    "Time one customization step of a build took, by step type.",
    ["type"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300),
)
BUILDS_RUNNING = Gauge("galleon_image_builds_running", "Image builds holding a build slot now.")
KUBE_REQUESTS = Counter(
    "galleon_kube_requests_total",
    "Kubernetes API requests made by a controller's passes and the Events it posts "
    "(watches excluded), by controller.",
    ["controller"],
)
HEALTH_STATES = ("Healthy", "Initializing", "Unhealthy")
_instance_series: dict[tuple[str, str], set[tuple[str, str]]] = {}
_SCALESET_GAUGES = (
    SCALESET_CAPACITY,
    SCALESET_UNHEALTHY_LIMIT,
    ROLLOUT_IN_PROGRESS,
    ROLLOUT_PROGRESS,
    ROLLOUT_BATCH,
    ROLLOUT_BATCHES,
)


def set_scaleset_instances(
    namespace: str, scaleset: str, counts: dict[tuple[str, str], int]
) -> None:
    """Set the instance gauges to `counts` ((version, health) → instances); series of
    versions no longer present are removed, so cardinality follows the fleet."""
    versions = {version for version, _ in counts}
    wanted = {(v, h) for v in versions for h in HEALTH_STATES}
    for version, health in _instance_series.get((namespace, scaleset), set()) - wanted:
        with contextlib.suppress(KeyError):
            SCALESET_INSTANCES.remove(namespace, scaleset, version, health)
    for version, health in wanted:
        SCALESET_INSTANCES.labels(namespace, scaleset, version, health).set(
            counts.get((version, health), 0)
        )
    _instance_series[(namespace, scaleset)] = wanted


def set_rollout_state(namespace: str, scaleset: str, state: str) -> None:
    _set_one_hot(ROLLOUT_STATE, (namespace, scaleset), ROLLOUT_STATES, state)


def forget_scaleset(namespace: str, scaleset: str) -> None:
    set_scaleset_instances(namespace, scaleset, {})
    _forget_one_hot(ROLLOUT_STATE, (namespace, scaleset), ROLLOUT_STATES)
    _instance_series.pop((namespace, scaleset), None)
    for gauge in _SCALESET_GAUGES:
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, scaleset)


REGION_STATES = ("Unknown", "Queued", "Replicating", "Completed", "Failed", "Removing")
LEAST_DONE_FIRST = ("Failed", "Unknown", "Removing", "Replicating", "Queued", "Completed")
"""The state one series shows when several regions of a version share a label."""
UNKNOWN_REGION = "_unknown"
"""The region label of what concerns a region no Region object has. A Region's name
is a DNS subdomain (lower case, digits, `-`, `.`), so no Region can be called this."""
_REGION_METRICS = (
    REPLICATED_BYTES,
    REPLICATION_DURATION,
    REPLICATION_ERRORS,
    REPLICATION_STATE,
    REGION_REGISTRIES_REACHABLE,
)
_regions: set[str] = set()
"""Regions the Region controller has seen and not seen deleted."""
_replication_series: dict[tuple[str, str, str], set[str]] = {}
"""(namespace, definition, version) → the region labels of its state series."""


def _set_one_hot(
    gauge: Gauge, labels: tuple[str, ...], states: tuple[str, ...], state: str
) -> None:
    """1 on the series of `state`, 0 on the other states' series (a state-set gauge)."""
    for candidate in states:
        gauge.labels(*labels, candidate).set(1 if candidate == state else 0)


def _forget_one_hot(gauge: Gauge, labels: tuple[str, ...], states: tuple[str, ...]) -> None:
    for candidate in states:
        with contextlib.suppress(KeyError):
            gauge.remove(*labels, candidate)


def region_exists(region: str) -> None:
    """The Region controller saw Region `region`: its name may label series."""
    _regions.add(region)


def region_label(region: str) -> str:
    """The `region` label of something about `region`: its name when the Region
    exists, else `UNKNOWN_REGION`.

    >>> region_exists("eastus2")
    >>> region_label("eastus2"), region_label("made-up-by-a-tenant")
    ('eastus2', '_unknown')
    >>> forget_region("eastus2")
    """
    return region if region in _regions else UNKNOWN_REGION


def set_registries_reachable(region: str, reachable: int) -> None:
    """The registries of `region` that answer; nothing once the Region is deleted (a
    check still running then must not bring its series back)."""
    if region in _regions:
        REGION_REGISTRIES_REACHABLE.labels(region).set(reachable)


def forget_region(region: str) -> None:
    """Region `region` was deleted: remove every series labelled with it, and label
    whatever is still counted about it `UNKNOWN_REGION`."""
    _regions.discard(region)
    for metric in _REGION_METRICS:
        metric.remove_by_labels({"region": region})
    for labels in _replication_series.values():
        labels.discard(region)


def set_replication_states(
    namespace: str, definition: str, version: str, states: Mapping[str, str]
) -> None:
    """Set the state gauges of one version to `states` (region → state, as the
    status summary says); series of regions no longer listed are removed. Regions
    without a Region object share the `UNKNOWN_REGION` series, showing the least
    done of their states (`LEAST_DONE_FIRST`)."""
    by_label: dict[str, str] = {}
    for region, state in states.items():
        label = region_label(region)
        known = by_label.get(label)
        if known is None or _rank(state) < _rank(known):
            by_label[label] = state
    key = (namespace, definition, version)
    for label in _replication_series.get(key, set()) - by_label.keys():
        _forget_one_hot(REPLICATION_STATE, (*key, label), REGION_STATES)
    for label, state in by_label.items():
        _set_one_hot(REPLICATION_STATE, (*key, label), REGION_STATES, state)
    _replication_series[key] = set(by_label)


def _rank(state: str) -> int:
    return LEAST_DONE_FIRST.index(state) if state in LEAST_DONE_FIRST else 0


def forget_replication_state(namespace: str, definition: str, version: str, region: str) -> None:
    """Remove the state series of one version in one region."""
    label = region_label(region)
    _forget_one_hot(REPLICATION_STATE, (namespace, definition, version, label), REGION_STATES)
    _replication_series.get((namespace, definition, version), set()).discard(label)


def forget_image_version(namespace: str, definition: str, version: str) -> None:
    """The ImageVersion is gone: remove every state series of it."""
    set_replication_states(namespace, definition, version, {})
    _replication_series.pop((namespace, definition, version), None)


def serve(port: int, address: str) -> None:
    """Serve /metrics in a background thread (port 0: not at all)."""
    if port:
        start_http_server(port, addr=address)
