"""kopf wiring of the ImageVersion controller, and nothing else.

Rules of this module: one daemon per ImageVersion runs `Publication.run_once` in
the shared daemon loop and sleeps until its spec changes (generation) or the pass's
resync time passes (or, after a pass that ended on transient failures, the loop's
backoff); deletion is `deletion.delete_version` behind the finalizer. The first pass
waits until kopf's own writes of a new object (that finalizer, its diff base) are
seen (`loop.kopf_settled`): nothing is written or copied for a version that could be
deleted without its cleanup, and the first status write is not refused as stale.
"""

from __future__ import annotations

from typing import Any

import kopf

from galleon import GROUP, VERSION
from galleon.controllers.imageversion import deletion
from galleon.controllers.imageversion.reconcile import Publication
from galleon.controllers.loop import Retry, kopf_settled, run_daemon
from galleon.controllers.runtime import DIFFBASE_ANNOTATION, FINALIZER

VERSIONS = (GROUP, VERSION, "imageversions")


@kopf.daemon(*VERSIONS, cancellation_timeout=30.0)
async def publication(
    stopped: Any,
    name: str,
    namespace: Any,
    meta: Any,
    logger: Any,
    memo: Any,
    image_versions_by_definition: Any = None,
    regions_by_name: Any = None,
    scalesets_by_definition: Any = None,
    definitions_by_name: Any = None,
    galleries_by_name: Any = None,
    **_: Any,
) -> None:
    """Publish and replicate one version; sleep until its spec changes or a resync is due."""
    worker = Publication(
        namespace,
        name,
        memo.runtime,
        image_versions_by_definition,
        regions_by_name,
        scalesets_by_definition,
        definitions_by_name,
        galleries_by_name,
    )
    seen = {"generation": meta.get("generation")}
    if not await kopf_settled(
        meta, stopped, logger, finalizer=FINALIZER, annotation=DIFFBASE_ANNOTATION
    ):
        return

    async def one_pass() -> float | Retry:
        seen["generation"] = meta.get("generation")
        return await worker.run_once()

    await run_daemon(
        "replication",
        stopped,
        one_pass,
        logger,
        changed=lambda: meta.get("generation") != seen["generation"],
        on_error=worker.fail,
    )


@kopf.on.delete(*VERSIONS)
async def delete_version(
    body: Any,
    spec: Any,
    status: Any,
    meta: Any,
    memo: Any,
    regions_by_name: Any = None,
    scalesets_by_definition: Any = None,
    **_: Any,
) -> None:
    """Delete every copy, unless a ScaleSet still runs the version (then hold, and retry)."""
    await deletion.delete_version(
        body, spec, status, meta, memo.runtime, regions_by_name, scalesets_by_definition
    )


@kopf.on.event(GROUP, VERSION, "replicationtasks")
def replication_task_changed(
    type: str, name: str, namespace: Any, body: Any, memo: Any, **_: Any
) -> None:
    """Wake the pass waiting on this task (`galleon.controllers.agent_dispatch`)."""
    memo.runtime.agents.observe(name, namespace, None if type == "DELETED" else dict(body))
