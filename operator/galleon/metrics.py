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

REGION_STATES = ("Unknown", "Queued", "Replicating", "Completed", "Failed", "Removing")


def set_replication_state(
    namespace: str, definition: str, version: str, region: str, state: str
) -> None:
    for candidate in REGION_STATES:
        REPLICATION_STATE.labels(namespace, definition, version, region, candidate).set(
            1 if candidate == state else 0
        )


def forget_replication_state(namespace: str, definition: str, version: str, region: str) -> None:
    for candidate in REGION_STATES:
        with contextlib.suppress(KeyError):
            REPLICATION_STATE.remove(namespace, definition, version, region, candidate)


def serve(port: int, address: str) -> None:
    """Serve /metrics in a background thread (port 0: not at all)."""
    if port:
        start_http_server(port, addr=address)
