"""Deleting an ImageVersion: every copy goes, unless something still needs it.

Rules of this module: deletion is behind the finalizer. It is held (condition
DeletionHeld with the reason, one Event, nothing deleted, retried) while a
ScaleSet runs or moves to the version, while an instance of any ScaleSet still
pulls one of its copies, or before the end-of-life date when the safety profile
blocks earlier deletion. Otherwise its replication pass is stopped and its
region agents' tasks withdrawn (nothing is pushed after the removal) and every
recorded copy is deleted, except one another version shares (same digest in the
same registry: reference counting, `galleon.core.references`), which stays for
that version. A copy that cannot be
deleted for good (permanent registry error, unknown registry) does not block the
deletion, a transient error retries it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NoReturn

import kopf

from galleon import clock
from galleon.controllers import registries
from galleon.controllers.common import as_dict, post_once
from galleon.controllers.gallery import refresh_definition
from galleon.controllers.imageversion.apply import RegionInfo
from galleon.controllers.imageversion.holders import followers, instance_pods, read_references
from galleon.controllers.indexes import first, versions_in_use
from galleon.controllers.shared import Runtime
from galleon.core import instances as inst
from galleon.core import reasons, references, times
from galleon.core.conditions import merged
from galleon.core.replication import Location
from galleon.kube import client as kube
from galleon.kube.resources import ImageVersion
from galleon.metrics import forget_image_version, forget_replication_state

logger = logging.getLogger(__name__)
HELD_RETRY_SECONDS = 10


async def users_of(namespace: str, definition: str, version: str) -> list[str]:
    """ScaleSets (`namespace/name`, any namespace) that run or move to this version: by
    their status (current, target, versions of their instances, the from and to of an
    upgrade still in flight) or by a pod of theirs labelled with the version.

    Read live, not from the watch-fed indexes: a ScaleSet or pod that appeared a
    moment ago must hold the deletion (a stale answer deletes copies that pods pull).
    """
    found = await followers(namespace, definition)
    users = set()
    for s in found:
        status = s.get("status") or {}
        upgrade = status.get("rollingUpgrade") or {}
        # An upgrade still in flight may roll back to where it came from.
        in_flight = upgrade.get("phase") not in (None, "Done")
        running = {upgrade.get("fromVersion"), upgrade.get("toVersion")} if in_flight else set()
        if version in versions_in_use(status) or version in running:
            users.add((s["metadata"]["namespace"], s["metadata"]["name"]))
    keys = {(s["metadata"]["namespace"], s["metadata"]["name"]) for s in found}
    if keys:
        for pod in await instance_pods({inst.VERSION_LABEL: version}):
            meta = pod["metadata"]
            key = (meta["namespace"], (meta.get("labels") or {}).get(inst.SCALESET_LABEL))
            if key in keys:
                users.add(key)
    return sorted(f"{ns}/{name}" for ns, name in users)


async def held_because(namespace: str, spec: Mapping[str, Any]) -> tuple[str, str] | None:
    """(reason, message) when the deletion must wait, else None."""
    definition, version = spec.get("imageDefinitionName", ""), spec.get("version", "")
    users = await users_of(namespace, definition, version)
    if users:
        return (
            reasons.IN_USE,
            f"deletion held: ScaleSet(s) {', '.join(users)} still run version {version}",
        )
    end_of_life = (spec.get("publishingProfile") or {}).get("endOfLifeDate")
    blocked = (spec.get("safetyProfile") or {}).get("blockDeletionBeforeEndOfLife")
    eol = times.parse_or_none(end_of_life) if blocked else None
    if eol is not None and eol > clock.now():
        return reasons.BEFORE_END_OF_LIFE, f"deletion held until the end-of-life date {end_of_life}"
    return None


async def hold(
    body: Any, status: Mapping[str, Any], meta: Mapping[str, Any], reason: str, message: str
) -> NoReturn:
    """Say why the deletion waits (DeletionHeld, one Event), and retry later. The
    condition is merged into the status as stored now, with its resourceVersion: a
    pass that wrote meanwhile is not overwritten (a conflict retries at once)."""
    post_once(body, status, reasons.DELETION_HELD, True, reason, message, warning=True)
    fresh = await kube.get_or_none(ImageVersion, meta["name"], meta["namespace"])
    if fresh is not None:
        stored = as_dict(fresh)
        try:
            await kube.patch_status(
                ImageVersion,
                meta["name"],
                {
                    "conditions": merged(
                        stored.get("status") or {},
                        stored["metadata"].get("generation"),
                        [(reasons.DELETION_HELD, "True", reason, message)],
                        clock.now(),
                    )
                },
                meta["namespace"],
                resource_version=stored["metadata"].get("resourceVersion"),
            )
        except kube.Conflict as error:
            raise kopf.TemporaryError("the status changed meanwhile", delay=1) from error
    raise kopf.TemporaryError(message, delay=HELD_RETRY_SECONDS)


async def delete_version(
    body: Any,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
    runtime: Runtime,
    regions_index: Mapping[Any, Any],
    scalesets_index: Mapping[Any, Any],
) -> None:
    """Hold, or delete every copy (the module's rules)."""
    name, namespace = meta["name"], meta["namespace"]
    definition = spec.get("imageDefinitionName", "")
    held = await held_because(namespace, spec)
    if held is not None:
        await hold(body, status, meta, *held)
    # A pass still copying is stopped first: nothing may be pushed after the removal.
    if not await runtime.passes.stop(meta["uid"]):
        raise kopf.TemporaryError("a replication pass is still ending", delay=HELD_RETRY_SECONDS)
    if not await runtime.agents.withdraw(meta["uid"]):
        raise kopf.TemporaryError(
            "a region agent is still stopping its copy of this version", delay=2
        )
    fresh = await kube.get_or_none(ImageVersion, name, namespace)
    status = (as_dict(fresh).get("status") or {}) if fresh is not None else status
    await delete_copies(body, meta, status, runtime, regions_index)
    forget_image_version(namespace, definition, spec.get("version", ""))
    if definition:
        await refresh_definition(namespace, definition, scalesets_index)


async def delete_copies(
    body: Any,
    meta: Mapping[str, Any],
    status: Mapping[str, Any],
    runtime: Runtime,
    regions_index: Mapping[Any, Any],
) -> None:
    """Delete every recorded copy that nothing else holds. A copy an instance still
    pulls holds the deletion; one another version shares (same digest, same registry)
    is left to that version."""
    name, namespace = meta["name"], meta["namespace"]
    spec = body.get("spec") or {}
    definition, version = spec.get("imageDefinitionName", ""), spec.get("version", "")
    digest, repository = status.get("sourceDigest"), status.get("repository")
    if not digest or not repository:
        return
    regions = {}
    for line in (status.get("replicationStatus") or {}).get("summary") or []:
        region = first(regions_index, line["region"])
        if region is not None:
            regions[line["region"]] = RegionInfo.from_object(region)
    locations = [
        Location(line["region"], replica["registry"])
        for line in (status.get("replicationStatus") or {}).get("summary") or []
        for replica in line.get("replicas") or []
    ]
    found = await read_references(namespace, meta.get("uid"), regions)
    shared = references.holders(locations, found.hosts, repository, digest, found.versions)
    # A pulled copy another version shares is that version's to keep: no hold.
    pulled = {
        location: who
        for location, who in references.holders(
            locations, found.hosts, repository, digest, found.pods
        ).items()
        if location not in shared
    }
    if pulled:
        said = "; ".join(f"{loc.region}/{loc.registry}: {who}" for loc, who in pulled.items())
        message = f"deletion held: copies are still pulled by instances ({said})"
        await hold(body, status, meta, reasons.IN_USE, message[:1024])
    for location in locations:
        if location in shared:
            logger.info(
                "%s/%s: the copy in %s/%s stays, %s shares it",
                namespace,
                name,
                location.region,
                location.registry,
                shared[location],
            )
            continue
        info = regions.get(location.region)
        endpoint = info.endpoint(location.registry) if info else None
        if endpoint is None:
            continue
        try:
            await runtime.registries.delete_image(endpoint, repository, digest)
        except registries.RegistryError as error:
            if error.permanent:
                continue  # nothing more can be done there; do not block deletion
            raise kopf.TemporaryError(
                f"deleting the copy in {location.region}/{location.registry}: {error}",
                delay=HELD_RETRY_SECONDS,
            ) from error
        forget_replication_state(namespace, definition, version, location.region)
