"""kopf wiring of the ScaleSet controller, and nothing else.

Rules of this module: one daemon per ScaleSet runs `ScaleSetReconciler.run_once`
in the shared daemon loop; it sleeps until one of its pods changes (the label-selected
pod watches of `galleon.controllers.scaleset.follow`, not kopf's, which also feed the
pod cache its passes read), a
version of the namespace changes, the ScaleSet's spec or control annotations
change, or the pass's requeue time passes. A ScaleSet's own status writes do not
wake it. A deleted ScaleSet is let go (its finalizer removed) only after its data
disks' ownership follows `whenDeleted`, so the garbage collector takes exactly the
disks the policy gives it, even when the policy changed while no pass ran.
"""

from __future__ import annotations

from typing import Any

import kopf

from galleon import GROUP, VERSION
from galleon.controllers.gallery import refresh_definition
from galleon.controllers.indexes import first, release_facts
from galleon.controllers.loop import kopf_settled, run_daemon
from galleon.controllers.runtime import DIFFBASE_ANNOTATION, FINALIZER
from galleon.controllers.scaleset.apply import Applier
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
    body: Any,
    logger: Any,
    memo: Any,
    image_versions_by_definition: Any = None,
    regions_by_name: Any = None,
    definitions_by_name: Any = None,
    galleries_by_name: Any = None,
    **_: Any,
) -> None:
    """Reconcile one ScaleSet whenever something it depends on changes."""
    runtime = runtime_of(memo)
    wakeups = runtime.wakeups
    key = (namespace, name)
    sources = Sources(
        image_versions_by_definition, regions_by_name, definitions_by_name, galleries_by_name
    )
    reconciler = ScaleSetReconciler(namespace, name, sources, live=body, pods=runtime.pods)
    try:
        # No pod or disk before kopf's finalizer: a ScaleSet deleted without it would
        # have its disks collected with it whatever its retention policy says.
        if not await kopf_settled(
            body.metadata, stopped, logger, finalizer=FINALIZER, annotation=DIFFBASE_ANNOTATION
        ):
            return
        await run_daemon(
            "scale set",
            stopped,
            reconciler.run_once,
            logger,
            wakeup=wakeups.register(key),
            on_error=reconciler.fail,
        )
    finally:
        wakeups.forget(key)
        runtime.pods.forget(*key)


@kopf.on.delete(*SCALESETS)
async def scaleset_deleted(body: Any, name: str, namespace: Any, logger: Any, **_: Any) -> None:
    """Apply the disk retention policy before the ScaleSet goes."""
    changed = await Applier(namespace, name).retain_on_deletion(dict(body))
    if changed:
        logger.info("%d data disk(s) re-owned for whenDeleted before deletion", changed)


@kopf.on.event(*SCALESETS)
async def scaleset_changed(
    event: Any,
    body: Any,
    name: str,
    namespace: Any,
    memo: Any,
    scalesets_by_definition: Any = None,
    definitions_by_name: Any = None,
    **_: Any,
) -> None:
    """Wake the daemon on spec or control changes (not on its own status writes); when
    the image it follows changes, the definitions it left and joined recount their users."""
    meta = body.get("metadata", {})
    annotations = meta.get("annotations") or {}
    controls = (
        meta.get("generation"),
        annotations.get(inst.START_ANNOTATION),
        annotations.get(inst.CANCEL_ANNOTATION),
        meta.get("deletionTimestamp"),
    )
    reference = (body.get("spec") or {}).get("imageReference") or {}
    wakeups = runtime_of(memo).wakeups
    wakeups.follow((namespace, name), reference.get("namespace") or namespace)
    wakeups.wake_on_change((namespace, name), controls)
    deleted = event.get("type") == "DELETED"
    if deleted:
        forget_scaleset(namespace, name)
    key = (namespace, name)
    followed: tuple[str, str] = (
        reference.get("namespace") or namespace,
        reference.get("imageDefinitionName") or "",
    )
    references = runtime_of(memo).references
    before = references.pop(key, None)
    if not deleted:
        references[key] = followed
    # What the release waves and quarantine read of this ScaleSet (its upgrade's end,
    # its health): a change refreshes the definition it follows.
    facts = None if deleted else (followed, release_key(body, followed, definitions_by_name))
    seen = runtime_of(memo).release_facts
    changed_release = seen.get(key) != facts
    if facts is None:
        seen.pop(key, None)
    else:
        seen[key] = facts
    if deleted or before != followed or changed_release:
        for source_namespace, definition in sorted({followed, *([before] if before else [])}):
            await refresh_definition(source_namespace, definition, scalesets_by_definition)


def release_key(body: Any, followed: tuple[str, str], definitions: Any) -> tuple[Any, ...]:
    """The ScaleSet's release facts that can change what its definition releases: its
    instances' health only counts when a wave of that definition asks for a share."""
    facts = release_facts(body.get("spec"), body.get("status"))
    definition = first(definitions or {}, followed) or {}
    policy = (definition.get("spec") or {}).get("releasePolicy") or {}
    if not any(w.get("minHealthyPercent") is not None for w in policy.get("waves") or []):
        facts.pop("healthy")
    return tuple(sorted(facts.items()))


@kopf.on.event(GROUP, VERSION, "imageversions")
async def versions_changed(namespace: Any, memo: Any, **_: Any) -> None:
    """A version changed: wake the ScaleSets that follow images of its namespace."""
    runtime_of(memo).wakeups.wake_followers(namespace)


@kopf.on.event(GROUP, VERSION, "galleries")
@kopf.on.event(GROUP, VERSION, "imagedefinitions")
async def sharing_changed(namespace: Any, memo: Any, **_: Any) -> None:
    """A gallery's sharing (or a definition's gallery) may have changed: the ScaleSets
    following that namespace's images re-check whether they may use them."""
    runtime_of(memo).wakeups.wake_followers(namespace)
