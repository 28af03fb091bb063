"""kopf wiring of the image builder's controllers, and nothing else.

Rules of this module: one daemon per ImageTemplate runs `TemplatePass.run_once` in
the shared daemon loop, woken by a change of its spec (generation) or of one of its
builds; one daemon per ImageBuild runs `BuildRun.run_once` until the build has
ended (a restarted operator starts the daemons of unfinished builds again). Both
read ImageVersions, Regions, ImageDefinitions and Galleries from the kopf indexes
(`galleon.controllers.indexes`), which kopf hands them as keyword arguments.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from galleon import GROUP, VERSION
from galleon.controllers.builder.run import BuildRun
from galleon.controllers.builder.template import TemplatePass
from galleon.controllers.common import report_failure
from galleon.controllers.loop import backoff, run_daemon
from galleon.controllers.scaleset.snapshot import Sources
from galleon.core import builds
from galleon.kube.resources import ImageBuild, ImageTemplate

TEMPLATES = (GROUP, VERSION, "imagetemplates")
BUILDS = (GROUP, VERSION, "imagebuilds")

_wakeups: dict[tuple[str, str], asyncio.Event] = {}


def _wakeup(namespace: str, template: str) -> asyncio.Event:
    return _wakeups.setdefault((namespace, template), asyncio.Event())


@kopf.daemon(*TEMPLATES, cancellation_timeout=10.0)
async def template_daemon(
    stopped: Any,
    name: str,
    namespace: Any,
    meta: Any,
    logger: Any,
    image_versions_by_definition: Any = None,
    regions_by_name: Any = None,
    definitions_by_name: Any = None,
    galleries_by_name: Any = None,
    **_: Any,
) -> None:
    """Start the builds a template's triggers ask for, prune its history, report."""
    lookup = Sources(
        image_versions_by_definition, regions_by_name, definitions_by_name, galleries_by_name
    )
    worker = TemplatePass(namespace, name, lookup)
    seen = {"generation": meta.get("generation")}

    async def one_pass() -> float:
        seen["generation"] = meta.get("generation")
        return await worker.run_once()

    async def failed(error: Exception) -> None:
        await report_failure(ImageTemplate, namespace, name, error)

    try:
        await run_daemon(
            "template",
            stopped,
            one_pass,
            logger,
            wakeup=_wakeup(namespace, name),
            changed=lambda: meta.get("generation") != seen["generation"],
            on_error=failed,
        )
    finally:
        _wakeups.pop((namespace, name), None)


@kopf.on.event(*BUILDS)
def build_changed(namespace: Any, meta: Any, **_: Any) -> None:
    """A build changed: its template's pass reports it without waiting for its resync."""
    template = (meta.get("labels") or {}).get(builds.TEMPLATE_LABEL)
    if template and (namespace, template) in _wakeups:
        _wakeups[(namespace, template)].set()


@kopf.daemon(*BUILDS, cancellation_timeout=30.0)
async def build_daemon(
    stopped: Any,
    name: str,
    namespace: Any,
    logger: Any,
    memo: Any,
    image_versions_by_definition: Any = None,
    regions_by_name: Any = None,
    definitions_by_name: Any = None,
    galleries_by_name: Any = None,
    **_: Any,
) -> None:
    """Run one build to its end; then the daemon ends."""
    lookup = Sources(
        image_versions_by_definition, regions_by_name, definitions_by_name, galleries_by_name
    )
    worker = BuildRun(namespace, name, memo.runtime, lookup)
    failures = 0
    while not stopped:
        try:
            wait = await worker.run_once()
            failures = 0
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a pass no rule foresaw: say so, retry with backoff
            failures += 1
            wait = backoff(failures)
            logger.exception("build pass failed; retrying in %.0fs", wait)
            try:
                await report_failure(ImageBuild, namespace, name, error)
            except Exception:
                logger.warning("build: the failure could not be reported", exc_info=True)
        if wait is None:
            return
        await stopped.wait(wait)
