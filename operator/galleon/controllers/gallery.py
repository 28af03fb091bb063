"""Gallery and ImageDefinition controllers: parents, counts, and "latest" per region.

Rules of this module:
- A Gallery is Ready when its location names an existing Region. An
  ImageDefinition is Ready when its gallery exists; otherwise Ready=False with
  reason GalleryNotFound, and it recovers by itself (a timer re-checks, and a new
  Gallery triggers its definitions).
- The ImageDefinition's latest versions are recomputed whenever one of its
  versions changes what it means for "latest" (completion per region, exclusion,
  deletion), and periodically as a safety net. The rule itself is
  `galleon.core.versions`.
- Events are posted on transitions only, never on every pass.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from galleon import GROUP, VERSION, clock
from galleon.api.imagedefinition import MAX_USED_BY
from galleon.controllers.common import as_dict, measured, post_once, version_facts
from galleon.core import reasons
from galleon.core.conditions import kstatus, merged
from galleon.core.versions import latest_by_region, latest_overall
from galleon.kube import client as kube
from galleon.kube.resources import Gallery, ImageDefinition, ImageVersion, Region

logger = logging.getLogger(__name__)
GALLERIES = (GROUP, VERSION, "galleries")
DEFINITIONS = (GROUP, VERSION, "imagedefinitions")
VERSIONS = (GROUP, VERSION, "imageversions")
RECHECK_SECONDS = 60.0


@kopf.on.resume(*GALLERIES)
@kopf.on.create(*GALLERIES)
@kopf.on.update(*GALLERIES)
@kopf.timer(*GALLERIES, interval=RECHECK_SECONDS, initial_delay=RECHECK_SECONDS)
async def reconcile_gallery(
    body: Any, spec: Any, status: Any, meta: Any, name: str, namespace: Any, patch: Any, **_: Any
) -> None:
    with measured("gallery"):
        location = spec.get("location", "")
        region = await kube.get_or_none(Region, location)
        definitions = [
            d
            async for d in kube.client().list(ImageDefinition, namespace=namespace)
            if (d.get("spec") or {}).get("galleryName") == name
        ]
        names = {d["metadata"]["name"] for d in definitions}
        versions = [
            v
            async for v in kube.client().list(ImageVersion, namespace=namespace)
            if (v.get("spec") or {}).get("imageDefinitionName") in names
        ]
        if region is None:
            ready, reason = False, reasons.REGION_NOT_FOUND
            message = f'location "{location}" names no Region'
        else:
            ready, reason, message = True, reasons.RECONCILED, f"home region {location}"
        post_once(body, status, reasons.READY, ready, reason, message)
        patch.status["observedGeneration"] = meta.get("generation")
        patch.status["imageDefinitionCount"] = len(definitions)
        patch.status["imageVersionCount"] = len(versions)
        patch.status["conditions"] = merged(
            status,
            meta.get("generation"),
            kstatus(ready, reason, message, stalled=not ready),
            clock.now(),
        )


@kopf.on.resume(*DEFINITIONS)
@kopf.on.create(*DEFINITIONS)
@kopf.on.update(*DEFINITIONS)
@kopf.timer(*DEFINITIONS, interval=RECHECK_SECONDS, initial_delay=RECHECK_SECONDS)
async def reconcile_definition(
    name: str, namespace: Any, scalesets_by_definition: Any = None, **_: Any
) -> None:
    with measured("imagedefinition"):
        await refresh_definition(namespace, name, scalesets_by_definition)


def used_by(scalesets: Mapping[Any, Any], namespace: str, name: str) -> dict[str, Any]:
    """`usedByNamespaces` (bounded) and `usedByNamespaceCount` from the ScaleSets index."""
    found = sorted({s["namespace"] for s in scalesets.get((namespace, name), ())})
    return {"usedByNamespaces": found[:MAX_USED_BY], "usedByNamespaceCount": len(found)}


async def refresh_definition(
    namespace: str, name: str, scalesets: Mapping[Any, Any] | None = None
) -> None:
    """Recompute an ImageDefinition's parent condition, counts and latest versions (and,
    given the ScaleSets index, which namespaces use it)."""
    obj = await kube.get_or_none(ImageDefinition, name, namespace)
    if obj is None:
        return
    body = as_dict(obj)
    spec, status, meta = body.get("spec") or {}, body.get("status") or {}, body["metadata"]
    gallery = await kube.get_or_none(Gallery, spec.get("galleryName", ""), namespace)
    versions = [
        as_dict(v)
        async for v in kube.client().list(ImageVersion, namespace=namespace)
        if (v.get("spec") or {}).get("imageDefinitionName") == name
    ]
    facts = [version_facts(v) for v in versions]
    latest = latest_overall(facts)
    by_region = latest_by_region(facts)
    if gallery is None:
        ready, reason = False, reasons.GALLERY_NOT_FOUND
        message = f'gallery "{spec.get("galleryName")}" does not exist in namespace {namespace}'
    else:
        ready, reason = True, reasons.RECONCILED
        message = f"{len(versions)} version(s); latest {latest or 'none'}"
    post_once(body, status, reasons.READY, ready, reason, message)
    updates = [
        *kstatus(ready, reason, message, stalled=not ready),
        (
            reasons.PARENT_FOUND,
            "True" if gallery else "False",
            reasons.PARENT_PRESENT if gallery else reasons.GALLERY_NOT_FOUND,
            message if not gallery else "",
        ),
    ]
    await kube.patch_status(
        ImageDefinition,
        name,
        {
            "observedGeneration": meta.get("generation"),
            "latestVersion": latest,
            "latestVersionByRegion": [
                {"region": region, "version": version}
                for region, version in sorted(by_region.items())
            ],
            "versionCount": len(versions),
            **(used_by(scalesets, namespace, name) if scalesets is not None else {}),
            "conditions": merged(status, meta.get("generation"), updates, clock.now()),
        },
        namespace,
    )


@kopf.on.event(*VERSIONS)
async def version_changed(
    event: Any,
    body: Any,
    name: str,
    namespace: Any,
    spec: Any,
    memo: Any,
    scalesets_by_definition: Any = None,
    **_: Any,
) -> None:
    """Refresh the definition when a version changes what "latest" means (what each
    version last meant is kept in the runtime: an optimisation only, a restart
    recomputes every definition on resume)."""
    seen = memo.runtime.version_facts
    key = (namespace, name)
    facts = None if event.get("type") == "DELETED" else version_facts(dict(body))
    if key in seen and seen[key] == facts:
        return
    if facts is None:
        seen.pop(key, None)
    else:
        seen[key] = facts
    definition = spec.get("imageDefinitionName")
    if definition:
        await refresh_definition(namespace, definition, scalesets_by_definition)


@kopf.on.event(*GALLERIES)
async def gallery_changed(
    event: Any, name: str, namespace: Any, scalesets_by_definition: Any = None, **_: Any
) -> None:
    """A gallery appeared or went away: its definitions re-check their parent."""
    if event.get("type") not in ("ADDED", "DELETED"):
        return
    async for d in kube.client().list(ImageDefinition, namespace=namespace):
        if (d.get("spec") or {}).get("galleryName") == name:
            await refresh_definition(namespace, d["metadata"]["name"], scalesets_by_definition)
