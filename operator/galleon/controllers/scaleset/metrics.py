"""A ScaleSet pass's metrics: instances by version and health, the rollout's state,
progress and batches, and rollout and instance-upgrade results.

Rules of this module: results are counted once, when this process sees a rollout
end or an instance's result recorded (comparing the rollout before and after the
pass); gauges are set from the pass's snapshot and plan.
"""

from __future__ import annotations

from galleon.controllers.scaleset.snapshot import ScaleSetSnapshot
from galleon.core import rollout as ro
from galleon.core.scaleset_status import instance_counts
from galleon.metrics import (
    INSTANCE_UPGRADES,
    ROLLOUT_BATCH,
    ROLLOUT_BATCHES,
    ROLLOUT_DURATION,
    ROLLOUT_IN_PROGRESS,
    ROLLOUT_PROGRESS,
    ROLLOUTS,
    SCALESET_CAPACITY,
    SCALESET_UNHEALTHY_LIMIT,
    set_rollout_state,
    set_scaleset_instances,
)


def record(
    snapshot: ScaleSetSnapshot,
    previous: ro.Rollout | None,
    new: ro.Rollout | None,
    policy: ro.Policy,
) -> None:
    """Every metric of one pass."""
    count_rollout_end(previous, new, snapshot)
    count_instance_upgrades(previous, new)
    spec, ns, name = snapshot.spec, snapshot.namespace, snapshot.name
    set_scaleset_instances(ns, name, instance_counts(snapshot.instances, policy, snapshot.now))
    SCALESET_CAPACITY.labels(ns, name).set(spec.capacity)
    limit = spec.upgrade_policy.rolling_upgrade_policy.max_unhealthy_instance_percent
    SCALESET_UNHEALTHY_LIMIT.labels(ns, name).set(spec.capacity * limit // 100)
    ROLLOUT_IN_PROGRESS.labels(ns, name).set(1 if new is not None and new.active else 0)
    if new is not None:
        set_rollout_state(ns, name, new.code)
        done = len(new.upgraded)
        ROLLOUT_PROGRESS.labels(ns, name).set(done / spec.capacity if spec.capacity else 1)
        ROLLOUT_BATCH.labels(ns, name).set(new.batch)
        ROLLOUT_BATCHES.labels(ns, name).set(ro.planned_batches(new, spec.capacity, policy))


def count_rollout_end(
    previous: ro.Rollout | None, new: ro.Rollout | None, snapshot: ScaleSetSnapshot
) -> None:
    """Count a rollout once, when this process sees it end."""
    if new is None or new.phase != "Done":
        return
    if previous is not None and previous.started == new.started and previous.phase == "Done":
        return  # ended in an earlier pass
    ROLLOUTS.labels(new.code).inc()
    ROLLOUT_DURATION.labels(new.code).observe((snapshot.now - new.started).total_seconds())


def count_instance_upgrades(previous: ro.Rollout | None, new: ro.Rollout | None) -> None:
    """Instance upgrade results newly recorded between two rollout states."""
    if new is None:
        return
    same = previous is not None and previous.started == new.started
    before_up = set(previous.upgraded) if same and previous else set()
    before_failed = set(previous.failed) if same and previous else set()
    before_back = set(previous.rolled_back) if same and previous else set()
    new_failed = set(new.failed) - before_failed
    new_up = set(new.upgraded) - before_up
    INSTANCE_UPGRADES.labels("Healthy").inc(len(new_up - set(new.failed)))
    INSTANCE_UPGRADES.labels("Unhealthy").inc(len(new_failed))
    INSTANCE_UPGRADES.labels("RolledBack").inc(len(set(new.rolled_back) - before_back))
