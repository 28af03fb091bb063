"""Sending a ScaleSet pass's intents: pods created and deleted, data disks claimed.

Rules of this module:
- A pod is deleted only with a UID precondition: a pod of the same name created
  since the snapshot is never deleted by mistake. A pending-upgrade notice (upgrade
  deferral) is a metadata PATCH of the pod at the resourceVersion observed.
- With `osImageUpdate: InPlaceIfPossible`, an upgrade or a rollback that only changes
  the image version is one strategic merge PATCH of the pod at the resourceVersion
  observed, not a delete and a create (`galleon.core.inplace`); a 409 leaves it to
  the next pass, which sees the pod as it is. A pod whose update kubelet holds in its
  restart backoff is deleted, and created again by the next pass.
- A create that finds the pod already there (409) is not an error. A pod this
  process created is not created again until the pass's pods could show it: the pod
  cache delivered its UID, or a LIST sent after the create was observed
  (`galleon.core.expectations`). Then what they show decides: the pod is there, or
  it was deleted meanwhile and is created again at once. A pod this process deleted
  is not deleted again while the pass still sees it running. No timer holds a write
  back. Memory only: losing it costs a 409 or a 404.
- Data disks are reconciled (created, re-owned, deleted after scale-in) before any
  pod is created, so a new pod always finds its claims; the check runs when pods
  are created or scaled in, when the generation changed, and while a disk waits
  for its pod to go (`galleon.core.claims`).
- A claim is mounted only if it is this ScaleSet's (`galleon.core.claims.belongs`):
  a create that finds another claim under the name is a conflict, and the pod that
  would mount it is not created.
- What the apiserver refuses for good (a create answered 400, 403 or 422) is kept
  as a problem (reason, message) that the next pass's status says; other errors
  raise, and the daemon loop retries with backoff.
- At most `WRITE_CONCURRENCY` writes are in flight at once per ScaleSet, and at
  most `SHARED_WRITE_CONCURRENCY` across every ScaleSet of the process: fewer than
  the HTTP client keeps connections alive (20), so a fleet's burst of writes reuses
  connections instead of opening new TLS ones, and no request waits in the client's
  pool, whose queue is scanned on every request that ends (quadratic in a burst).
- Every request is counted in the controller's request metric.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Any

from lightkube import codecs
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import PersistentVolumeClaim, Pod
from lightkube.types import PatchType

from galleon import clock
from galleon.controllers.common import as_dict
from galleon.controllers.scaleset.snapshot import ScaleSetSnapshot, VersionImage
from galleon.core import claims, deferral, inplace, prepull, reasons
from galleon.core import instances as inst
from galleon.core import rollout as ro
from galleon.core.expectations import Expectations
from galleon.kube import client as kube
from galleon.kube.resources import PodBody
from galleon.metrics import KUBE_REQUESTS

logger = logging.getLogger(__name__)
WRITE_CONCURRENCY = 16
SHARED_WRITE_CONCURRENCY = 16
_shared_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)
REFUSED_CODES = frozenset({400, 403, 422})
"""Answers to a create that retrying the same request cannot change."""

Problem = tuple[str, str]
"""(reason, message) of something the last apply could not do."""


async def bounded(coroutines: Iterable[Awaitable[Any]], limit: int = WRITE_CONCURRENCY) -> None:
    """Await every coroutine, at most `limit` at once; the first error raises once all
    have ended."""
    gate = asyncio.Semaphore(limit)
    shared = shared_gate()

    async def one(coroutine: Awaitable[Any]) -> None:
        async with gate, shared:
            await coroutine

    results = await asyncio.gather(*map(one, coroutines), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def shared_gate() -> asyncio.Semaphore:
    """The process's bound on ScaleSet writes in flight (one per event loop)."""
    loop = asyncio.get_running_loop()
    gate = _shared_gates.get(loop)
    if gate is None:
        gate = _shared_gates[loop] = asyncio.Semaphore(SHARED_WRITE_CONCURRENCY)
    return gate


class Applier:
    """Applies one ScaleSet's intents; keeps what it must remember between passes."""

    def __init__(self, namespace: str, name: str) -> None:
        self.namespace, self.name = namespace, name
        self.requests = 0
        self._claims_checked_generation: int | None = None
        self._claims_pending = False
        self.expectations = Expectations()
        """Pods this process created that no LIST observed yet."""
        self.problems: tuple[Problem, ...] = ()
        """What the last apply could not do, for the next pass's status."""
        self.pulls_may_exist = True
        """Pull pods may be left (checked once after a start, then after each upgrade)."""
        self.pulled: tuple[str | None, frozenset[str]] = (None, frozenset())
        """(revision, nodes) whose pulls an earlier LIST saw done (memory only)."""
        self.in_place_refused = False
        """The apiserver refused an in-place update for good: recreate from then on."""
        self.pulls_refused: set[str] = set()
        """Revisions whose pull pods the apiserver refused: their upgrades go on without."""

    def count(self, requests: int = 1) -> None:
        self.requests += requests
        KUBE_REQUESTS.labels("scaleset").inc(requests)

    async def apply(
        self,
        snapshot: ScaleSetSnapshot,
        actions: Sequence[ro.Action],
        images: Mapping[str, VersionImage | None],
    ) -> None:
        """Claims first (when due), then the deletes, creates and notices, bounded."""
        uids = snapshot.pod_uids or {}
        self.expectations.observe(
            listed_at=snapshot.listed_at,
            seen=snapshot.seen,
            pods={i.index: (uids[i.index], i.deleting) for i in snapshot.instances},
        )
        creates = [a for a in actions if isinstance(a, ro.Create)]
        deletes = [a for a in actions if isinstance(a, ro.Delete)]
        in_place = self.in_place(snapshot, deletes)
        updates = [a for a in deletes if a.index in in_place]
        deletes = [a for a in deletes if a.index not in in_place]
        deletes += self.held(snapshot, {a.index for a in deletes})
        notices = [a for a in actions if isinstance(a, ro.Notify)]
        scale_in = any(a.reason == "ScaleIn" for a in deletes)
        problems: list[Problem] = []
        if snapshot.spec.data_disks and (
            creates
            or scale_in
            or self._claims_pending
            or self._claims_checked_generation != snapshot.generation
        ):
            self._claims_pending, conflicts = await self.reconcile_claims(snapshot)
            self._claims_checked_generation = snapshot.generation
            problems += [(reasons.DISK_CONFLICT, m) for _, m in sorted(conflicts.items())]
            creates = [a for a in creates if a.index not in conflicts]
        refused: list[str] = []
        await bounded(
            [
                *(self._delete_pod(snapshot, a) for a in deletes),
                *(self._create_pod(snapshot, a, images, refused) for a in creates),
                *(self._notify_pod(snapshot, a) for a in notices),
                *(self._update_pod(snapshot, a, in_place[a.index]) for a in updates),
            ]
        )
        problems += [(reasons.CREATE_REFUSED, m) for m in sorted(refused)]
        self.problems = tuple(problems)

    async def _create_pod(
        self,
        snapshot: ScaleSetSnapshot,
        action: ro.Create,
        images: Mapping[str, VersionImage | None],
        refused: list[str],
    ) -> None:
        if self.expectations.pending(action.index, action.revision):
            return  # created, and not observed since: this pass's pods cannot show it yet
        image = images[action.revision]
        assert image is not None  # the reconciler drops creates without a copy
        reference, pull_secret = image.image(action.index)
        manifest = inst.pod_manifest(
            snapshot.body,
            snapshot.spec,
            action.index,
            action.revision,
            reference,
            snapshot.node_selector or {},
            pull_secret,
        )
        try:
            created = await kube.client().create(PodBody.from_dict(manifest))
            uid = (created.get("metadata") or {}).get("uid")
            if uid:  # (an answer without one is not waited for: at worst a 409)
                self.expectations.created(action.index, action.revision, uid, at=clock.monotonic())
        except ApiError as error:
            if error.status.code in REFUSED_CODES:
                refused.append(
                    f"pod {manifest['metadata']['name']}: the apiserver refused it "
                    f"({error.status.code}): {error.status.message}"
                )
            elif error.status.code != 409:
                raise
        finally:
            self.count()

    async def _delete_pod(self, snapshot: ScaleSetSnapshot, action: ro.Delete) -> None:
        uid = (snapshot.pod_uids or {}).get(action.index)
        if uid is None:
            return  # no pod observed at that index: nothing of ours to delete
        if self.expectations.deleting(action.index, uid):
            return  # deleted, and the pod cache has not delivered it yet
        name = inst.pod_name(self.name, action.index)
        if await kube.delete_if_uid(Pod, name, self.namespace, uid):
            self.expectations.deleted(action.index, uid, at=clock.monotonic())
        self.count()

    def in_place(
        self, snapshot: ScaleSetSnapshot, deletes: Sequence[ro.Delete]
    ) -> dict[int, tuple[str, dict[str, Any]]]:
        """The upgrades and rollbacks among `deletes` done in place instead
        (`galleon.core.inplace`): index → (pod name, its patch). Empty unless the
        ScaleSet says InPlaceIfPossible."""
        if snapshot.spec.upgrade_policy.os_image_update != "InPlaceIfPossible":
            return {}
        if self.in_place_refused:
            return {}
        images = snapshot.images or {}
        pods = {p["metadata"]["name"]: p for p in snapshot.pods}
        found: dict[int, tuple[str, dict[str, Any]]] = {}
        for action in deletes:
            revision = action.upgrade_to
            name = inst.pod_name(self.name, action.index)
            pod = pods.get(name)
            if revision is None or pod is None:
                continue
            current = inst.revision_of_pod(pod)
            old, new = images.get(inst.version_of(current)), images.get(inst.version_of(revision))
            old_ref = old.image(action.index) if old is not None else None
            new_ref = new.image(action.index) if new is not None else None
            secrets = (old_ref[1], new_ref[1]) if old_ref and new_ref else None
            why = inplace.blocker(snapshot.spec, pod, revision, secrets)
            if why is not None or old_ref is None or new_ref is None:
                logger.debug(
                    "%s/%s: %s replaced, not in place: %s", self.namespace, self.name, name, why
                )
                continue
            restart = old_ref[0] != new_ref[0]
            found[action.index] = (
                name,
                inplace.patch(snapshot.spec, pod, revision, new_ref[0], restart=restart),
            )
        return found

    def held(self, snapshot: ScaleSetSnapshot, deleting: set[int]) -> list[ro.Delete]:
        """Deletes of the pods whose in-place update kubelet holds in its restart
        backoff (`galleon.core.inplace.held`): the next pass creates them again."""
        found = []
        for pod in snapshot.pods:
            if inplace.ANNOTATION not in (pod["metadata"].get("annotations") or {}):
                continue  # never updated in place: nothing holds it
            labels = pod["metadata"].get("labels") or {}
            try:
                index = int(labels.get(inst.INDEX_LABEL, ""))
            except ValueError:
                continue
            being_deleted = pod["metadata"].get("deletionTimestamp") is not None
            if index in deleting or being_deleted or not inplace.held(pod):
                continue
            logger.info(
                "%s/%s: kubelet holds the in-place update of %s in restart backoff: recreating",
                self.namespace,
                self.name,
                pod["metadata"]["name"],
            )
            found.append(ro.Delete(index, "InPlaceHeld"))
        return found

    async def _update_pod(
        self, snapshot: ScaleSetSnapshot, action: ro.Delete, update: tuple[str, dict[str, Any]]
    ) -> None:
        """Give a pod its new OS image in place: one strategic merge PATCH at the
        resourceVersion observed (a pod changed since is left to the next pass). A
        refusal for good (an admission policy that forbids pod updates) is logged, and
        this ScaleSet's instances are recreated from then on, this one at once."""
        name, body = update
        try:
            await kube.client().patch(
                Pod, name, body, namespace=self.namespace, patch_type=PatchType.STRATEGIC
            )
            return
        except ApiError as error:
            if error.status.code not in REFUSED_CODES:
                if error.status.code in (404, 409):
                    return
                raise
            self.in_place_refused = True
            logger.warning(
                "%s/%s: in-place update of %s refused, recreating instead (%s): %s",
                self.namespace,
                self.name,
                name,
                error.status.code,
                error.status.message,
            )
        finally:
            self.count()
        await self._delete_pod(snapshot, action)

    async def _notify_pod(self, snapshot: ScaleSetSnapshot, action: ro.Notify) -> None:
        """Tell an instance its upgrade is pending (upgrade deferral): one metadata PATCH
        of the pod as observed (its resourceVersion); a pod changed or gone since is
        left to the next pass, which sees it."""
        name = inst.pod_name(self.name, action.index)
        observed = next((p for p in snapshot.pods if p["metadata"]["name"] == name), None)
        if observed is None:
            return  # no pod observed at that index: nothing to tell
        try:
            await kube.client().patch(
                Pod,
                name,
                deferral.notice_patch(action, observed["metadata"].get("resourceVersion")),
                namespace=self.namespace,
                patch_type=PatchType.MERGE,
            )
        except ApiError as error:
            if error.status.code not in (404, 409):
                raise
        finally:
            self.count()

    async def pre_pull(
        self, snapshot: ScaleSetSnapshot, revision: str | None, now: Any
    ) -> prepull.PullPlan:
        """Pull pods for `revision` onto the nodes of the instances it replaces
        (`galleon.core.prepull`): one LIST while pulls are wanted or may be left over,
        then the creates and deletes the plan asks."""
        if revision in self.pulls_refused:
            revision = None
        version = inst.version_of(revision) if revision else None
        image = (snapshot.images or {}).get(version) if version else None
        if revision is None and not self.pulls_may_exist:
            return prepull.PullPlan()
        needs = (
            prepull.needs_of(snapshot.pods, revision, image.image)
            if revision is not None and image is not None
            else {}
        )
        done_revision, done_nodes = self.pulled
        if revision is not None and revision == done_revision and set(needs) <= done_nodes:
            # Every node this upgrade still needs has pulled (seen by an earlier LIST):
            # nothing to ask the apiserver until the upgrade ends or a node is added.
            return prepull.PullPlan(nodes=len(needs), pulled=len(needs))
        existing = [
            p
            async for p in kube.client().list(
                PodBody, namespace=self.namespace, labels={prepull.PULL_LABEL: self.name}
            )
        ]
        self.count()
        found = prepull.plan(
            snapshot.body,
            snapshot.spec.template.spec,
            revision if image is not None else None,
            needs,
            existing,
            now,
        )
        await bounded(
            [
                *(self._create_pull(m, revision or "") for m in found.create),
                *(self._delete_pull(n) for n in found.delete),
                *([self._delete_stale_pulls(found.selector)] if found.stale else []),
            ]
        )
        gone = len(found.delete) + len(found.stale)
        self.pulls_may_exist = bool(needs) or len(existing) > gone
        pulled = revision is not None and found.hold is None and not found.create
        self.pulled = (revision, frozenset(needs)) if pulled else (None, frozenset())
        if revision in self.pulls_refused:
            return prepull.PullPlan()
        return found

    async def _create_pull(self, manifest: dict[str, Any], revision: str) -> None:
        try:
            await kube.client().create(PodBody.from_dict(manifest))
        except ApiError as error:
            if error.status.code in REFUSED_CODES:
                # A pull pod the apiserver refuses (a quota, a policy) is no reason to hold
                # the upgrade: it goes on without pre-pull, and the log says why.
                self.pulls_refused.add(revision)
                logger.warning(
                    "%s/%s: pull pod refused, upgrading to %s without pre-pull: %s",
                    self.namespace,
                    self.name,
                    revision,
                    error.status.message,
                )
            elif error.status.code != 409:
                raise
        finally:
            self.count()

    async def _delete_pull(self, name: str) -> None:
        with contextlib.suppress(ApiError):
            await kube.client().delete(Pod, name, namespace=self.namespace)
        self.count()

    async def _delete_stale_pulls(self, selector: str) -> None:
        """The stale pull pods, in one request (a delete of the collection they make).
        A refusal holds nothing up; the log says it, and the next LIST tries again."""
        try:
            await kube.delete_collection(Pod, self.namespace, selector)
        except ApiError as error:
            logger.warning(
                "%s/%s: stale pull pods (%s) not deleted (%s): %s",
                self.namespace,
                self.name,
                selector,
                error.status.code,
                error.status.message,
            )
        finally:
            self.count()

    async def reconcile_claims(self, snapshot: ScaleSetSnapshot) -> tuple[bool, dict[int, str]]:
        """List the claims, plan them, send the plan. (True while a disk waits for its
        pod to go, index → why its claim is not this ScaleSet's)."""
        existing = [
            as_dict(c)
            async for c in kube.client().list(
                PersistentVolumeClaim,
                namespace=self.namespace,
                labels={inst.SCALESET_LABEL: self.name},
            )
        ]
        self.count()
        pods = {p["metadata"]["name"] for p in snapshot.pods}
        plan = claims.plan_claims(snapshot.body, snapshot.spec, existing, pods)
        conflicts: dict[int, str] = {}
        await bounded(
            [
                *(self._create_claim(m, conflicts) for m in plan.create),
                *map(self._delete_claim, plan.delete),
                *(self._set_claim_owners(name, refs) for name, refs in plan.set_owners),
            ]
        )
        return plan.waiting, conflicts

    async def _create_claim(self, manifest: dict[str, Any], conflicts: dict[int, str]) -> None:
        """Create a missing claim; a name already taken must be this ScaleSet's claim of
        the same disk and index, or it is a conflict."""
        labels = manifest["metadata"]["labels"]
        disk, index = labels[inst.DISK_LABEL], int(labels[inst.INDEX_LABEL])
        try:
            await kube.client().create(codecs.from_dict(manifest))
        except ApiError as error:
            if error.status.code != 409:
                raise
            found = await kube.get_or_none(
                PersistentVolumeClaim, manifest["metadata"]["name"], self.namespace
            )
            self.count()
            if found is not None and not claims.belongs(as_dict(found), self.name, disk, index):
                conflicts[index] = claims.conflict_message(as_dict(found), disk, index)
        finally:
            self.count()

    async def retain_on_deletion(self, body: Mapping[str, Any]) -> int:
        """Before a deleted ScaleSet is let go: every claim of its owned or not as
        `whenDeleted` says (the garbage collector takes the owned ones after it).
        The number of claims changed."""
        existing = [
            as_dict(c)
            async for c in kube.client().list(
                PersistentVolumeClaim,
                namespace=self.namespace,
                labels={inst.SCALESET_LABEL: self.name},
            )
        ]
        self.count()
        rule = claims.when_deleted(body.get("spec") or {})
        changes = claims.retention_owners(body, rule, existing)
        await bounded(self._set_claim_owners(name, refs) for name, refs in changes)
        return len(changes)

    async def _delete_claim(self, name: str) -> None:
        with contextlib.suppress(ApiError):
            await kube.client().delete(PersistentVolumeClaim, name, namespace=self.namespace)
        self.count()

    async def _set_claim_owners(self, name: str, refs: Sequence[dict[str, Any]]) -> None:
        await kube.client().patch(
            PersistentVolumeClaim,
            name,
            {"metadata": {"ownerReferences": list(refs)}},
            namespace=self.namespace,
            patch_type=PatchType.MERGE,
        )
        self.count()
