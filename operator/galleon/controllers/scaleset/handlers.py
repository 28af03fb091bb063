"""kopf wiring of the ScaleSet controller, and nothing else.

Rules of this module: one daemon per ScaleSet runs `ScaleSetReconciler.run_once`
in the shared daemon loop; it sleeps until an instance changes (pod watch), a
version of the namespace changes, the ScaleSet's spec or control annotations
change, or the pass's requeue time passes. A ScaleSet's own status writes do not
wake it.
"""

from __future__ import annotations

from typing import Any

import kopf

from galleon import GROUP, VERSION
from galleon.controllers.loop import run_daemon
from galleon.controllers.scaleset.reconcile import ScaleSetReconciler
from galleon.controllers.scaleset.snapshot import Sources
from galleon.controllers.shared import Runtime
from galleon.core import instances as inst
from galleon.metrics import forget_scaleset

SCALESETS = (GROUP, VERSION, "scalesets")


def runtime_of(memo: Any) -> Runtime:
    runtime: Runtime = memo.runtime
    return runtime


@kopf.daemon(*SCALESETS, cancellation_timeout=30.0)
async def scaleset_daemon(
    stopped: Any,
    name: str,
    namespace: Any,
    logger: Any,
    memo: Any,
    image_versions_by_definition: Any = None,
    regions_by_name: Any = None,
    **_: Any,
) -> None:
    """Reconcile one ScaleSet whenever something it depends on changes."""
    wakeups = runtime_of(memo).wakeups
    key = (namespace, name)
    reconciler = ScaleSetReconciler(
        namespace, name, Sources(image_versions_by_definition, regions_by_name)
    )
    try:
        await run_daemon(
            "scale set", stopped, reconciler.run_once, logger, wakeup=wakeups.register(key)
        )
    finally:
        wakeups.forget(key)


@kopf.on.event(*SCALESETS)
async def scaleset_changed(
    event: Any, body: Any, name: str, namespace: Any, memo: Any, **_: Any
) -> None:
    """Wake the daemon on spec or control changes (not on its own status writes)."""
    meta = body.get("metadata", {})
    annotations = meta.get("annotations") or {}
    controls = (
        meta.get("generation"),
        annotations.get(inst.START_ANNOTATION),
        annotations.get(inst.CANCEL_ANNOTATION),
        meta.get("deletionTimestamp"),
    )
    runtime_of(memo).wakeups.wake_on_change((namespace, name), controls)
    if event.get("type") == "DELETED":
        forget_scaleset(namespace, name)


@kopf.on.event("", "v1", "pods", labels={inst.SCALESET_LABEL: kopf.PRESENT})
async def instance_changed(labels: Any, namespace: Any, memo: Any, **_: Any) -> None:
    runtime_of(memo).wakeups.wake(namespace, labels[inst.SCALESET_LABEL])


@kopf.on.event(GROUP, VERSION, "imageversions")
async def versions_changed(namespace: Any, memo: Any, **_: Any) -> None:
    runtime_of(memo).wakeups.wake_namespace(namespace)
