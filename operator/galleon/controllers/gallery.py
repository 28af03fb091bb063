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

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, cast

import kopf

from galleon import GROUP, VERSION, clock
from galleon.api.imagedefinition import MAX_QUARANTINED, MAX_USED_BY, ImageDefinitionSpec
from galleon.controllers.coalesce import Coalescer
from galleon.controllers.common import as_dict, measured, post_once
from galleon.controllers.indexes import first
from galleon.core import merge_patch, reasons, times, waves
from galleon.core.conditions import kstatus, merged
from galleon.core.observed import version_facts
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
    namespace: str,
    name: str,
    scalesets: Mapping[Any, Any] | None = None,
    versions_index: Mapping[Any, Any] | None = None,
    galleries_index: Mapping[Any, Any] | None = None,
) -> None:
    """Recompute an ImageDefinition's parent condition, counts and latest versions (and,
    given the ScaleSets index, which namespaces use it). Given the ImageVersions and
    Galleries indexes (kept by the watches), the versions and the gallery are read
    from them instead of a LIST and a GET: a burst of version changes costs no LIST
    that grows with the definition. A burst of refreshes of one definition is
    coalesced (`galleon.controllers.coalesce`): requests made during a refresh are
    answered together by one more, so 200 versions changing at once cost a few
    refreshes, not 200."""
    await _refreshes_of_definitions.run(
        (namespace, name), namespace, name, scalesets, versions_index, galleries_index
    )


async def _refresh_definition(
    namespace: str,
    name: str,
    scalesets: Mapping[Any, Any] | None,
    versions_index: Mapping[Any, Any] | None,
    galleries_index: Mapping[Any, Any] | None,
) -> None:
    obj = await kube.get_or_none(ImageDefinition, name, namespace)
    if obj is None:
        return
    body = as_dict(obj)
    spec, status, meta = body.get("spec") or {}, body.get("status") or {}, body["metadata"]
    gallery_name = spec.get("galleryName", "")
    gallery = first(galleries_index, (namespace, gallery_name)) if galleries_index else None
    if gallery is None:
        gallery = await kube.get_or_none(Gallery, gallery_name, namespace)
    if versions_index is not None:
        versions = [dict(v) for v in versions_index.get((namespace, name), ())]
    else:
        versions = [
            as_dict(v)
            async for v in kube.client().list(ImageVersion, namespace=namespace)
            if (v.get("spec") or {}).get("imageDefinitionName") == name
        ]
    now = clock.now()
    facts = [version_facts(v) for v in versions]
    members = (
        [member_of(s) for s in scalesets.get((namespace, name), ())]
        if scalesets is not None
        else None
    )
    quarantined = (
        waves.quarantines(
            recorded_quarantines(status),
            members,
            {
                f.version: times.parse_or_none(
                    ((v.get("metadata") or {}).get("annotations") or {}).get(
                        waves.RELEASE_ANNOTATION
                    )
                )
                for f, v in zip(facts, versions, strict=True)
            },
            [f.version for f in facts],
        )[-MAX_QUARANTINED:]
        if members is not None
        else recorded_quarantines(status)
    )
    banned = {q.version for q in quarantined}
    usable = [replace(f, excluded_from_latest=True) if f.version in banned else f for f in facts]
    latest = latest_overall(usable)
    policy = ImageDefinitionSpec.model_validate(spec).release_policy if spec else None
    release_fields: dict[str, Any]
    if policy is None:
        release_fields = {
            "latestVersionByRegion": [
                {"region": region, "version": version}
                for region, version in sorted(latest_by_region(usable).items())
            ],
            "release": None,
        }
    elif members is None:
        release_fields = {}  # the rules need the ScaleSets: the next pass with them decides
    else:
        found = waves.release(
            [
                waves.Wave(
                    tuple(w.regions),
                    times.duration(w.bake_time, timedelta(0)),
                    w.min_healthy_percent,
                    w.name,
                )
                for w in policy.waves
            ],
            facts,
            members,
            recorded_release(status),
            banned,
            now,
        )
        release_fields = release_status(found)
        if found.next_change is not None:
            schedule_refresh(namespace, name, found.next_change, now, scalesets)
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
    before = {q["version"] for q in status.get("quarantinedVersions") or []}
    for q in quarantined:
        if q.version not in before:
            kopf.warn(
                cast(Any, body),
                reason=reasons.VERSION_QUARANTINED,
                message=f"{q.version} quarantined: the upgrade of scaleset {q.scale_set} "
                f"faulted: {q.message}",
            )
    for version in sorted(before - banned):
        kopf.info(
            cast(Any, body),
            reason=reasons.QUARANTINE_RELEASED,
            message=f"{version} is no longer quarantined",
        )
    written = {
        "observedGeneration": meta.get("generation"),
        "latestVersion": latest,
        **release_fields,
        "quarantinedVersions": [quarantine_status(q) for q in quarantined],
        "versionCount": len(versions),
        **(used_by(scalesets, namespace, name) if scalesets is not None else {}),
        "conditions": merged(status, meta.get("generation"), updates, now),
    }
    if any(not same(written[k], status.get(k)) for k in written):
        await kube.patch_status(ImageDefinition, name, written, namespace)
    await mark_quarantines(namespace, versions, {q.version: q for q in quarantined})


_refreshes_of_definitions = Coalescer(_refresh_definition)


def same(written: Any, stored: Any) -> bool:
    """Whether a status field written by merge patch (which drops null fields) would
    read back as `stored` (an extra write when unsure, never a missed one).

    >>> same({"a": None, "b": [1]}, {"b": [1]}), same([], None), same("x", "y")
    (True, True, False)
    """
    found = merge_patch.stored(written)
    return found == stored or (found in ([], None) and stored in ([], None))


def member_of(entry: Mapping[str, Any]) -> waves.Member:
    """A ScaleSets-index entry as the release rules see it."""
    facts = entry.get("release") or {}
    return waves.Member(
        namespace=entry["namespace"],
        name=entry["name"],
        region=facts.get("region") or "",
        follows_latest=bool(facts.get("followsLatest")),
        capacity=int(facts.get("capacity") or 0),
        current_version=facts.get("currentVersion"),
        healthy={v: n for v, n in facts.get("healthy") or () if v},
        upgrade_from=facts.get("upgradeFrom"),
        upgrade_to=facts.get("upgradeTo"),
        upgrade_code=facts.get("upgradeCode"),
        upgrade_since=times.parse_or_none(facts.get("upgradeSince")),
        upgrade_message=facts.get("upgradeMessage") or "",
    )


def recorded_quarantines(status: Mapping[str, Any]) -> list[waves.Quarantine]:
    return [
        waves.Quarantine(
            q["version"],
            times.parse_or_none(q.get("since")),
            q.get("scaleSet", ""),
            q.get("message", ""),
        )
        for q in status.get("quarantinedVersions") or []
        if q.get("version")
    ]


def quarantine_status(q: waves.Quarantine) -> dict[str, Any]:
    return {
        "version": q.version,
        "since": times.format(q.since) if q.since else None,
        "scaleSet": q.scale_set,
        "message": q.message,
    }


def recorded_release(status: Mapping[str, Any]) -> waves.Recorded:
    release = status.get("release") or {}
    return waves.Recorded(
        version=release.get("version"),
        waves={
            w["wave"]: waves.RecordedWave(
                times.parse_or_none(w.get("releasedAt")), times.parse_or_none(w.get("upgradedAt"))
            )
            for w in release.get("waves") or []
            if isinstance(w.get("wave"), int)
        },
        released={
            r["region"]: r["version"]
            for r in status.get("latestVersionByRegion") or []
            if r.get("region") and r.get("version")
        },
    )


def _time(moment: datetime | None) -> str | None:
    return times.format(moment) if moment is not None else None


def release_status(found: waves.Release) -> dict[str, Any]:
    """The status fields of a release (`waves.release`)."""
    return {
        "latestVersionByRegion": [
            {
                "region": r.region,
                "version": r.version,
                "wave": r.wave,
                "pendingVersion": r.pending,
                "opensAt": _time(r.opens_at),
                "message": r.message or None,
            }
            for r in found.regions
        ],
        "release": {
            "version": found.version,
            "waves": [
                {
                    "wave": w.number,
                    "name": w.wave.name,
                    "state": w.state,
                    "releasedAt": _time(w.released_at),
                    "upgradedAt": _time(w.upgraded_at),
                    "opensAt": _time(w.opens_at),
                    "message": w.message or None,
                }
                for w in found.waves
            ],
        },
    }


async def mark_quarantines(
    namespace: str, versions: Sequence[Mapping[str, Any]], quarantined: Mapping[str, Any]
) -> None:
    """Say on each ImageVersion whether it is quarantined (written only when it changes)."""
    for v in versions:
        version = (v.get("spec") or {}).get("version")
        q = quarantined.get(str(version))
        wanted = None
        if q is not None:
            wanted = {k: x for k, x in quarantine_status(q).items() if k != "version"}
        if (v.get("status") or {}).get("quarantine") != wanted:
            await kube.patch_status(
                ImageVersion, v["metadata"]["name"], {"quarantine": wanted}, namespace
            )


_refreshes: dict[tuple[str, str], asyncio.TimerHandle] = {}
_running: set[asyncio.Task[None]] = set()


def schedule_refresh(
    namespace: str,
    name: str,
    when: datetime,
    now: datetime,
    scalesets: Mapping[Any, Any] | None,
) -> None:
    """Refresh the definition again when a bake ends (in memory: a restarted operator
    refreshes every definition on resume, and the timer every minute)."""
    key = (namespace, name)
    pending = _refreshes.pop(key, None)
    if pending is not None:
        pending.cancel()
    loop = asyncio.get_running_loop()
    delay = max(0.0, (when - now).total_seconds()) + 0.5

    async def refresh() -> None:
        try:
            await refresh_definition(namespace, name, scalesets)
        except Exception:  # the minute timer tries again; say why this one failed
            logger.exception("%s/%s: refresh after a bake failed", namespace, name)

    def fire() -> None:
        _refreshes.pop(key, None)
        task = loop.create_task(refresh())
        _running.add(task)
        task.add_done_callback(_running.discard)

    _refreshes[key] = loop.call_later(delay, fire)


@kopf.on.event(*VERSIONS)
async def version_changed(
    event: Any,
    body: Any,
    name: str,
    namespace: Any,
    spec: Any,
    memo: Any,
    scalesets_by_definition: Any = None,
    image_versions_by_definition: Any = None,
    galleries_by_name: Any = None,
    **_: Any,
) -> None:
    """Refresh the definition when a version changes what "latest" means, or its
    quarantine release annotation changes (what each version last meant is kept in
    the runtime: an optimisation only, a restart
    recomputes every definition on resume)."""
    seen = memo.runtime.version_facts
    key = (namespace, name)
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    facts = (
        None
        if event.get("type") == "DELETED"
        else (version_facts(dict(body)), annotations.get(waves.RELEASE_ANNOTATION))
    )
    if key in seen and seen[key] == facts:
        return
    if facts is None:
        seen.pop(key, None)
    else:
        seen[key] = facts
    definition = spec.get("imageDefinitionName")
    if definition:
        await refresh_definition(
            namespace,
            definition,
            scalesets_by_definition,
            image_versions_by_definition,
            galleries_by_name,
        )


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
