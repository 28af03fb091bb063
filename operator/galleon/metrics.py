"""Prometheus metrics of the operator, served on `--metrics-port` at /metrics.

Rules of this module: names follow Prometheus conventions (`galleon_` prefix, base
units, `_total` for counters, `_seconds`/`_bytes`); labels are bounded: region,
namespace and object names come from the user's own resources (like
kube-state-metrics), never from free text, error messages or digests; series of
deleted objects are removed (`forget_*`).
"""

from __future__ import annotations

import contextlib

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


def set_replication_state(
    namespace: str, definition: str, version: str, region: str, state: str
) -> None:
    _set_one_hot(REPLICATION_STATE, (namespace, definition, version, region), REGION_STATES, state)


def forget_replication_state(namespace: str, definition: str, version: str, region: str) -> None:
    _forget_one_hot(REPLICATION_STATE, (namespace, definition, version, region), REGION_STATES)


def serve(port: int, address: str) -> None:
    """Serve /metrics in a background thread (port 0: not at all)."""
    if port:
        start_http_server(port, addr=address)
