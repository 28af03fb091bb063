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
