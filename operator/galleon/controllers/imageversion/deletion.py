"""Deleting an ImageVersion: every copy goes, unless something still needs it.

Rules of this module: deletion is behind the finalizer. It is held (condition
DeletionHeld with the reason, one Event, nothing deleted, retried) while a
ScaleSet runs or moves to the version, or before the end-of-life date when the
safety profile blocks earlier deletion. Otherwise every recorded copy is deleted;
a copy that cannot be deleted for good (permanent registry error, unknown
registry) does not block the deletion, a transient error retries it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf
from lightkube import ALL_NS
from lightkube.operators import exists
from lightkube.resources.core_v1 import Pod

from galleon import clock
from galleon.controllers import registries
from galleon.controllers.common import as_dict, post_once
from galleon.controllers.gallery import refresh_definition
from galleon.controllers.imageversion.apply import RegionInfo
from galleon.controllers.indexes import first, versions_in_use
from galleon.controllers.shared import Runtime
from galleon.core import instances as inst
from galleon.core import reasons, times
from galleon.core.conditions import merged
from galleon.kube import client as kube
from galleon.kube.resources import ImageVersion, ScaleSet
from galleon.metrics import forget_replication_state

HELD_RETRY_SECONDS = 10


async def users_of(namespace: str, definition: str, version: str) -> list[str]:
    """ScaleSets (`namespace/name`, any namespace) that run or move to this version: by
    their status (current, target, versions of their instances, the from and to of an
    upgrade still in flight) or by a pod of theirs labelled with the version.

    Read live, not from the watch-fed indexes: a ScaleSet or pod that appeared a
    moment ago must hold the deletion (a stale answer deletes copies that pods pull).
    """
    followers, users = set(), set()
    async for obj in kube.client().list(ScaleSet, namespace=ALL_NS):
        s = as_dict(obj)
        meta, spec = s["metadata"], s.get("spec") or {}
        reference = spec.get("imageReference") or {}
        source = reference.get("namespace") or meta["namespace"]
        if (source, reference.get("imageDefinitionName")) != (namespace, definition):
            continue
        key = (meta["namespace"], meta["name"])
        followers.add(key)
        status = s.get("status") or {}
        upgrade = status.get("rollingUpgrade") or {}
        # An upgrade still in flight may roll back to where it came from.
        in_flight = upgrade.get("phase") not in (None, "Done")
        running = {upgrade.get("fromVersion"), upgrade.get("toVersion")} if in_flight else set()
        if version in versions_in_use(status) or version in running:
            users.add(key)
    if followers:
        labels: dict[str, Any] = {inst.SCALESET_LABEL: exists(), inst.VERSION_LABEL: version}
        async for pod in kube.client().list(Pod, namespace=ALL_NS, labels=labels):
            if pod.metadata is None:
                continue
            key = (pod.metadata.namespace, (pod.metadata.labels or {})[inst.SCALESET_LABEL])
            if key in followers:
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
    definition, version = spec.get("imageDefinitionName", ""), spec.get("version", "")
    held = await held_because(namespace, spec)
    if held is not None:
        reason, message = held
        post_once(body, status, reasons.DELETION_HELD, True, reason, message, warning=True)
        await kube.patch_status(
            ImageVersion,
            name,
            {
                "conditions": merged(
                    status,
                    meta.get("generation"),
                    [(reasons.DELETION_HELD, "True", reason, message)],
                    clock.now(),
                )
            },
            namespace,
        )
        raise kopf.TemporaryError(message, delay=HELD_RETRY_SECONDS)
    digest, repository = status.get("sourceDigest"), status.get("repository")
    if digest and repository:
        for line in (status.get("replicationStatus") or {}).get("summary") or []:
            found = first(regions_index, line["region"])
            region = RegionInfo.from_object(found) if found else None
            for replica in line.get("replicas") or []:
                endpoint = region.endpoint(replica["registry"]) if region else None
                if endpoint is None:
                    continue
                try:
                    await runtime.registries.delete_image(endpoint, repository, digest)
                except registries.RegistryError as error:
                    if error.permanent:
                        continue  # nothing more can be done there; do not block deletion
                    raise kopf.TemporaryError(
                        f"deleting the copy in {line['region']}/{replica['registry']}: {error}",
                        delay=HELD_RETRY_SECONDS,
                    ) from error
                forget_replication_state(namespace, definition, version, line["region"])
    if definition:
        await refresh_definition(namespace, definition, scalesets_index)
