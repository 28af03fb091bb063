"""A ScaleSet's data disks (PVCs): which to create, which to delete, whose to re-own.

`plan_claims(scaleset, spec, claims, pods)` compares the data disks the instance
model asks for with the claims that exist and returns intents; the controller
sends them. Nothing here does I/O.

Rules of this module (the StatefulSet PVC retention policy, docs/rollout.md):
- Every instance below capacity has one claim per data disk, `<disk>-<scaleset>-<i>`;
  a missing one is created (an existing one is never replaced: it holds data).
- `whenDeleted: Delete` makes the ScaleSet own its claims (they go with it);
  `Retain` removes that ownership. Only galleon's own owner reference is touched.
- `whenScaled: Delete` deletes the claims of instances at or above capacity, but
  only once their pod is gone: a disk is never deleted under a running instance.
  `Retain` keeps them for a later scale-out.
- A claim without a readable index label is not galleon's to decide about.
- A claim is mounted only if it is this ScaleSet's: labelled with its name, the
  disk and the index (`belongs`). Claim names alone can collide (disk `data` of
  ScaleSet `web-1` and disk `data-web` of ScaleSet `1` are both `data-web-1-0`
  for instance 0); a name taken by another claim is a conflict, said in the
  status, and that instance is not created.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from galleon.api.scaleset import ScaleSetSpec
from galleon.core import instances as inst


@dataclass(frozen=True)
class ClaimPlan:
    """What to do to the claims, and whether a disk waits for its pod to go."""

    create: tuple[dict[str, Any], ...] = ()
    """Manifests of missing claims."""
    delete: tuple[str, ...] = ()
    """Names of claims to delete (scaled in, pod gone)."""
    set_owners: tuple[tuple[str, tuple[dict[str, Any], ...]], ...] = ()
    """(claim name, its new ownerReferences) where ownership must change."""
    waiting: bool = False
    """A claim is due for deletion but its pod still exists: check again later."""

    @property
    def empty(self) -> bool:
        return not (self.create or self.delete or self.set_owners)


def belongs(claim: Mapping[str, Any], scaleset: str, disk: str, index: int) -> bool:
    """Whether `claim` (a dict) is the data disk `disk` of instance `index` of
    ScaleSet `scaleset`, by its labels.

    >>> mine = {"metadata": {"labels": {inst.SCALESET_LABEL: "web-1", inst.DISK_LABEL: "data",
    ...     inst.INDEX_LABEL: "0"}}}
    >>> belongs(mine, "web-1", "data", 0), belongs(mine, "1", "data-web", 0)
    (True, False)
    """
    labels = (claim.get("metadata") or {}).get("labels") or {}
    return (
        labels.get(inst.SCALESET_LABEL) == scaleset
        and labels.get(inst.DISK_LABEL) == disk
        and labels.get(inst.INDEX_LABEL) == str(index)
    )


def conflict_message(claim: Mapping[str, Any], disk: str, index: int) -> str:
    """Why instance `index` cannot mount `claim`: whose claim it is."""
    meta = claim.get("metadata") or {}
    labels = meta.get("labels") or {}
    owner = labels.get(inst.SCALESET_LABEL)
    whose = (
        f"the data disk {labels.get(inst.DISK_LABEL)!r} of ScaleSet {owner!r}"
        if owner
        else "a claim that is not galleon's"
    )
    return (
        f"instance {index} is not created: its data disk {disk!r} would be the claim "
        f"{meta.get('name')!r}, which is {whose}; rename the disk or the ScaleSet"
    )


def when_deleted(spec: Mapping[str, Any]) -> str:
    """`whenDeleted` of a stored spec (a dict), read leniently: a deleted ScaleSet is
    let go even when its spec no longer validates, and anything but an explicit
    `Delete` keeps the disks.

    >>> when_deleted({}), when_deleted({"persistentVolumeClaimRetentionPolicy":
    ...     {"whenDeleted": "Delete"}}), when_deleted({"persistentVolumeClaimRetentionPolicy": 3})
    ('Retain', 'Delete', 'Retain')
    """
    policy = spec.get("persistentVolumeClaimRetentionPolicy")
    rule = policy.get("whenDeleted") if isinstance(policy, Mapping) else None
    return "Delete" if rule == "Delete" else "Retain"


def retention_owners(
    scaleset: Mapping[str, Any], rule: str, claims: Sequence[Mapping[str, Any]]
) -> tuple[tuple[str, tuple[dict[str, Any], ...]], ...]:
    """(claim name, new ownerReferences) for every claim whose ownership disagrees with
    the `whenDeleted` `rule`, whatever its index: what must hold before a deleted
    ScaleSet is let go (its owned claims go with it, the others stay)."""
    owned = rule == "Delete"
    uid = scaleset["metadata"]["uid"]
    changes = []
    for claim in sorted(claims, key=lambda c: c["metadata"]["name"]):
        if _index(claim) is None:
            continue
        refs = list(claim["metadata"].get("ownerReferences") or [])
        if any(r.get("uid") == uid for r in refs) != owned:
            new_refs = [r for r in refs if r.get("uid") != uid]
            if owned:
                new_refs.append(inst.owner_reference(scaleset))
            changes.append((claim["metadata"]["name"], tuple(new_refs)))
    return tuple(changes)


def _index(claim: Mapping[str, Any]) -> int | None:
    labels = (claim.get("metadata") or {}).get("labels") or {}
    try:
        return int(labels.get(inst.INDEX_LABEL, ""))
    except ValueError:
        return None


def plan_claims(
    scaleset: Mapping[str, Any],
    spec: ScaleSetSpec,
    claims: Sequence[Mapping[str, Any]],
    pods: Collection[str],
) -> ClaimPlan:
    """The claim intents for `scaleset` (its object, as a dict) given the existing
    `claims` (dicts, labelled as the ScaleSet's) and the names of its existing `pods`.

    >>> from galleon.api.scaleset import ScaleSetSpec
    >>> spec = ScaleSetSpec.model_validate({
    ...     "region": "east", "capacity": 1,
    ...     "imageReference": {"imageDefinitionName": "d"},
    ...     "template": {"spec": {"containers": [{"name": "os"}]}},
    ...     "dataDisks": [{"name": "data", "lun": 0, "diskSizeGB": 1}]})
    >>> body = {"metadata": {"name": "web", "namespace": "ns", "uid": "u1"}}
    >>> [m["metadata"]["name"] for m in plan_claims(body, spec, [], []).create]
    ['data-web-0']
    """
    retention = spec.persistent_volume_claim_retention_policy
    owned = retention.when_deleted == "Delete"
    uid = scaleset["metadata"]["uid"]
    name = scaleset["metadata"]["name"]
    existing = {c["metadata"]["name"]: c for c in claims}
    create = [
        inst.claim_manifest(scaleset, disk, index, owned=owned)
        for index in range(spec.capacity)
        for disk in spec.data_disks
        if inst.claim_name(disk.name, name, index) not in existing
    ]
    delete: list[str] = []
    set_owners: list[tuple[str, tuple[dict[str, Any], ...]]] = []
    waiting = False
    for claim_name, claim in sorted(existing.items()):
        meta = claim["metadata"]
        index = _index(claim)
        if index is None:
            continue
        if (
            index >= spec.capacity
            and retention.when_scaled == "Delete"
            and meta.get("deletionTimestamp") is None
        ):
            if inst.pod_name(name, index) in pods:
                waiting = True  # never under a running instance: its pod goes first
            else:
                delete.append(claim_name)
            continue
        refs = list(meta.get("ownerReferences") or [])
        has_owner = any(r.get("uid") == uid for r in refs)
        if has_owner != owned:
            new_refs = [r for r in refs if r.get("uid") != uid]
            if owned:
                new_refs.append(inst.owner_reference(scaleset))
            set_owners.append((claim_name, tuple(new_refs)))
    return ClaimPlan(tuple(create), tuple(delete), tuple(set_owners), waiting)
