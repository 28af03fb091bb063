"""One pass of reconciling one ScaleSet: snapshot → decide → status → write once →
apply → events and metrics.

Rules of this module (the rules of upgrades themselves are in
`galleon.core.upgrade_trigger` and `galleon.core.rollout`, the status in
`galleon.core.scaleset_status`):
- The pass reads the clock once (`now`) and the world once (`read_snapshot`: its
  pods from the pod cache, with no request, once the cache's watch is synced). The
  ScaleSet itself comes from kopf's live body (fed by its watch) when that body's
  resourceVersion is the one this daemon last read or wrote: nothing changed it
  since, so no GET is needed; from the answer to its last status write when the live
  body is still the version that write was computed from (the watch has not shown
  the write yet); otherwise (someone else wrote it) from one GET. A pass never
  plans from a status older than its own last write.
- The status is written *before* any pod is touched, so the batch being replaced
  is on record before any instance of it goes: a restarted operator reads that
  record and finishes the same batch; it never starts a second one early and never
  upgrades an instance recorded as upgraded. The write is skipped when nothing in
  it changed. A write that only moves counts (`only_counts_moved`: instances ready,
  progress, the numbers in the conditions' messages) waits up to `COALESCE_SECONDS`
  after the first pass that held one back, and is folded into the next write: the
  passes of a batch whose instances turn Ready one by one write once, not once per
  instance. Every decision (a batch, a phase, a condition's status or reason) is
  written by the pass that makes it, before it acts.
- A create the region has no copy for is dropped (and said in Ready); everything
  else the planner asked is applied. What the apply could not do (a create the
  apiserver refused, a data disk conflict) is said in the next pass's status,
  which comes at once.
- A ScaleSet whose image definition does not exist (in its own namespace) is
  Stalled with that reason; one of another namespace is the sharing check's to
  answer, which says the same whether it is missing or not shared.
- Events are posted after the write succeeded; maintenance windows that cannot be
  read get one Warning (InvalidMaintenanceWindow) when the condition turns so.
- The pass looks again no later than the plan asks; a plan held by a maintenance
  window asks for the moment the window opens.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, cast

import kopf

from galleon import clock
from galleon.api.scaleset import ScaleSetSpec
from galleon.controllers.common import as_dict, measured, post_once, report_failure
from galleon.controllers.scaleset import metrics
from galleon.controllers.scaleset.apply import Applier
from galleon.controllers.scaleset.snapshot import (
    ScaleSetSnapshot,
    Sources,
    VersionImage,
    definition_namespace,
    read_scaleset,
    read_snapshot,
)
from galleon.core import instances as inst
from galleon.core import reasons
from galleon.core import rollout as ro
from galleon.core.podcache import PodCache
from galleon.core.scaleset_status import (
    ScaleSetFacts,
    refused_status,
    scaleset_status,
    write_decision,
)
from galleon.core.upgrade_trigger import record_start, upgrade_intent
from galleon.core.waves import rollout_holds
from galleon.kube import client as kube
from galleon.kube.resources import ScaleSet
from galleon.metrics import forget_scaleset

logger = logging.getLogger(__name__)
RESYNC_SECONDS = 30.0
WAIT_CAP_SECONDS = 30.0
COALESCE_SECONDS = 2.0
"""Longest a status write that only moves counts waits for the next write."""
GONE_SECONDS = 3600.0
"""A deleted ScaleSet's daemon is stopped by kopf; until then, nothing to do."""


class ScaleSetReconciler:
    """Reconciles one ScaleSet, one pass at a time (one per daemon)."""

    def __init__(
        self,
        namespace: str,
        name: str,
        sources: Sources,
        live: Mapping[str, Any] | None = None,
        pods: PodCache | None = None,
    ) -> None:
        self.namespace, self.name = namespace, name
        self.sources = sources
        self.pods = pods
        """The pod cache (None: every pass LISTs its pods)."""
        self.applier = Applier(namespace, name)
        self.live = live
        """kopf's live body of the ScaleSet (updated by its watch), when it has one."""
        self.known_version: str | None = None
        """The resourceVersion this daemon last read or wrote (None: unknown)."""
        self.read_version: str | None = None
        """The resourceVersion of the body the running (or last) pass read."""
        self.written: dict[str, Any] | None = None
        """The ScaleSet as the API server answered this daemon's last status write."""
        self.written_over: str | None = None
        """The resourceVersion of the body that write was computed from."""
        self.held_since: float | None = None
        """When (monotonic) a pass first held back a write that only moved counts (None:
        none is held back)."""
        self.copied: tuple[str, dict[str, Any]] | None = None
        """(resourceVersion, the body at it, copied): the passes that read one version
        share one copy (no pass changes the body it reads)."""
        self.validated: tuple[Any, ScaleSetSpec] | None = None
        """(spec as read, its model): a spec equal to the last one is not validated again."""

    @property
    def requests(self) -> int:
        """API requests made so far (benchmarks read it)."""
        return self.applier.requests

    async def run_once(self) -> float:
        """One pass; the seconds until the next one is due."""
        body = self.unchanged_body()
        if body is None:
            body = await read_scaleset(self.namespace, self.name)
            self.applier.count()
            self.known_version = version_of(body)
        if body is None:
            forget_scaleset(self.namespace, self.name)
            return GONE_SECONDS
        if body["metadata"].get("deletionTimestamp"):
            return GONE_SECONDS
        self.read_version = version_of(body)
        with measured("scaleset"):
            return await self.reconcile(body)

    async def reconcile(self, body: dict[str, Any]) -> float:
        now = clock.now()
        spec = self.spec_of(body)
        try:
            inst.check_model(spec)
        except inst.InvalidModel as error:
            await self.refuse(body, reasons.INVALID_SPEC, str(error), now)
            return RESYNC_SECONDS
        source = definition_namespace(self.namespace, spec)
        definition = spec.image_reference.image_definition_name
        if source == self.namespace and self.sources.definition(source, definition) is None:
            await self.refuse(
                body,
                reasons.DEFINITION_NOT_FOUND,
                f'image definition "{definition}" does not exist in namespace {source}',
                now,
            )
            return RESYNC_SECONDS
        snapshot = await read_snapshot(body, spec, self.sources, now, self.pods)
        if snapshot.region is None:
            await self.refuse(
                body, reasons.REGION_NOT_FOUND, f"Region {spec.region} does not exist", now
            )
            return RESYNC_SECONDS
        if snapshot.listed:
            self.applier.count()  # the pod LIST
        assert snapshot.sharing is not None  # set whenever the Region exists
        if not snapshot.sharing.allowed:
            # Not (or no longer) shared: nothing is created, upgraded or deleted; running
            # instances keep running (as the cloud keeps existing VMs of an unshared image).
            await self.refuse(body, snapshot.sharing.reason, snapshot.sharing.message, now)
            return RESYNC_SECONDS
        assert snapshot.resolution is not None  # set whenever the Region exists
        recorded = snapshot.recorded
        holds, supersede = rollout_holds(
            snapshot.quarantined or {}, recorded.rollout, snapshot.resolution.target
        )
        intent = upgrade_intent(
            spec, snapshot.instances, snapshot.target, recorded, snapshot.controls, now, holds=holds
        )
        pulls = await self.applier.pre_pull(
            snapshot, pull_revision(spec, intent, snapshot.target), now
        )
        if pulls.hold is not None:
            # The new image is not on the nodes of the instances it replaces yet: no batch
            # starts until it is (or the pulls ran out of time).
            intent = upgrade_intent(
                spec,
                snapshot.instances,
                snapshot.target,
                recorded,
                snapshot.controls,
                now,
                holds=[*holds, pulls.hold],
            )
        observation = intent.observation(spec, snapshot.instances, snapshot.target)
        if supersede:
            # The version it goes to is quarantined and a newer one is the target: stop
            # after the running batch, so that the newer one can start.
            observation = replace(observation, cancel=True)
        plan = ro.plan(observation, intent.rollout, intent.policy, now)
        start = record_start(intent, recorded.rollout, plan.rollout, now)
        actions, images, missing = creatable(plan.actions, snapshot.images or {})
        status = scaleset_status(
            ScaleSetFacts(
                name=self.name,
                spec=spec,
                generation=snapshot.generation,
                recorded=snapshot.status,
                resolution=snapshot.resolution,
                target=snapshot.target,
                instances=snapshot.instances,
                rollout=plan.rollout,
                policy=intent.policy,
                intent=intent,
                start=start,
                now=now,
                missing_images=missing,
                problems=self.applier.problems,
                quarantined=frozenset(snapshot.quarantined or ()),
            )
        )
        reported = self.applier.problems
        held = await self.write_status(snapshot, status)
        for reason, message in reported:
            post_once(snapshot.body, snapshot.status, reasons.READY, False, reason, message)
        window = intent.window
        if window is not None and window.error:  # maintenance windows it cannot read
            post_once(
                snapshot.body,
                snapshot.status,
                reasons.MAINTENANCE_WINDOW,
                False,
                window.reason,
                window.message,
            )
        await self.applier.apply(snapshot, actions, images)
        self.post_events(snapshot, plan, start.starting)
        metrics.record(snapshot, recorded.rollout, plan.rollout, intent.policy)
        self.log(plan)
        if self.applier.problems != reported:
            return 0.0  # say what the apply found now, not at the next requeue
        return min(plan.requeue_after, WAIT_CAP_SECONDS, held)

    def spec_of(self, body: Mapping[str, Any]) -> ScaleSetSpec:
        """The spec's model (validated again only when the spec differs from the last)."""
        raw = body["spec"]
        if self.validated is not None and self.validated[0] == raw:
            return self.validated[1]
        spec = ScaleSetSpec.model_validate(raw)
        self.validated = (raw, spec)
        return spec

    def unchanged_body(self) -> dict[str, Any] | None:
        """The ScaleSet as it is, when no request is needed to know it (a copy: the
        pass may keep it while kopf replaces the live one; one per resourceVersion,
        shared by the passes that read it): the live body when it is the version this
        daemon last read or wrote; the answer to this daemon's last status write when
        the live body is still the version that write was computed from (kopf's watch
        has not shown the write yet, and nobody wrote in between without the write's
        answer holding it)."""
        if self.live is None or self.known_version is None:
            return None
        live = version_of(self.live)
        if live == self.known_version:
            return self.copy_of(self.live, live)
        written = self.written
        if (
            written is not None
            and version_of(written) == self.known_version
            and live is not None
            and live == self.written_over
        ):
            return self.copy_of(written, self.known_version)
        return None

    def copy_of(self, body: Mapping[str, Any], version: str) -> dict[str, Any]:
        if self.copied is None or self.copied[0] != version:
            self.copied = (version, copy.deepcopy(dict(body)))
        return self.copied[1]

    async def fail(self, error: Exception) -> None:
        """A pass failed in a way no rule foresaw: say so on the ScaleSet."""
        self.known_version = None  # the report writes the status
        await report_failure(ScaleSet, self.namespace, self.name, error)
        self.applier.count(2)

    async def write_status(self, snapshot: ScaleSetSnapshot, status: Mapping[str, Any]) -> float:
        """One status PATCH, skipped when nothing in it changed, and held back (up to
        COALESCE_SECONDS) when only counts moved (`write_decision`); the seconds until
        a write held back is due (infinite: none is)."""
        decision = write_decision(
            snapshot.status, status, self.held_since, clock.monotonic(), COALESCE_SECONDS
        )
        self.held_since = decision.held_since
        if decision.send:
            await self.patch_status(dict(status))
            logger.debug("%s/%s status written", self.namespace, self.name)
        elif decision.held_since is not None:
            logger.debug(
                "%s/%s status held back (only counts moved): due in %.1fs",
                self.namespace,
                self.name,
                decision.due_in,
            )
        return decision.due_in

    async def patch_status(self, status: dict[str, Any]) -> None:
        """Merge-patch the status; remember the object written and the version it was
        computed from (unknown if it fails)."""
        self.known_version, self.written = None, None
        answer = await kube.patch_status_object(ScaleSet, self.name, status, self.namespace)
        self.applier.count()
        if answer is not None:
            self.written = as_dict(answer)
            self.written_over = self.read_version
            self.known_version = version_of(self.written)

    async def refuse(self, body: dict[str, Any], reason: str, message: str, now: datetime) -> None:
        """Bad input or a missing dependency: say so (one Event per reason), change
        nothing on the instances."""
        status = body.get("status") or {}
        post_once(body, status, reasons.READY, False, reason, message)
        generation = body["metadata"].get("generation")
        await self.patch_status(refused_status(status, generation, reason, message, now))

    def post_events(self, snapshot: ScaleSetSnapshot, plan: ro.Plan, starting: bool) -> None:
        body = cast(Any, snapshot.body)
        if starting and snapshot.spec.upgrade_policy.rolling_upgrade_policy.max_surge:
            kopf.info(
                body,
                reason=reasons.MAX_SURGE_NOT_APPLIED,
                message="maxSurge is set, but instances keep their identity and data "
                "disks, so each one is replaced under its own name (docs/rollout.md)",
            )
            self.applier.count()
        for event in plan.events:
            post = kopf.info if event.type == "Normal" else kopf.warn
            post(body, reason=event.reason, message=event.message)
            self.applier.count()

    def log(self, plan: ro.Plan) -> None:
        for action in plan.actions:
            logger.debug("%s/%s action: %s", self.namespace, self.name, action)
        for note in plan.notes:
            logger.debug("%s/%s plan: %s", self.namespace, self.name, note)
        new = plan.rollout
        logger.debug(
            "%s/%s pass: %s batch %s, %d actions, requeue %.1fs",
            self.namespace,
            self.name,
            new.phase if new else "-",
            new.batch if new else "-",
            len(plan.actions),
            plan.requeue_after,
        )


def version_of(body: Mapping[str, Any] | None) -> str | None:
    """An object's resourceVersion (None: no object, or none given)."""
    if body is None:
        return None
    return (body.get("metadata") or {}).get("resourceVersion") or None


def pull_revision(spec: ScaleSetSpec, intent: Any, target: str | None) -> str | None:
    """The revision whose image is pre-pulled now: the running upgrade's, or the target
    when an upgrade to it may start (None: pre-pull is off, or nothing is due).

    Pre-pull is on in Rolling mode unless `prePullImages` says otherwise."""
    rolling = spec.upgrade_policy.rolling_upgrade_policy
    enabled = rolling.pre_pull_images
    if enabled is None:
        enabled = spec.upgrade_policy.mode == "Rolling"
    if not enabled:
        return None
    rollout = intent.rollout
    if rollout is not None and rollout.active:
        return str(rollout.to_revision)
    due = intent.trigger.may_start or intent.start_requested
    if target is not None and intent.source is not None and target != intent.source and due:
        return target
    return None


def creatable(
    actions: Sequence[ro.Action], images: Mapping[str, VersionImage]
) -> tuple[list[ro.Action], dict[str, VersionImage | None], list[str]]:
    """(the actions that can be applied, revision → its copy in the region, versions
    with no copy): a create without a copy in the region cannot be sent."""
    by_revision: dict[str, VersionImage | None] = {
        a.revision: images.get(inst.version_of(a.revision))
        for a in actions
        if isinstance(a, ro.Create)
    }
    applicable = [
        a for a in actions if not isinstance(a, ro.Create) or by_revision[a.revision] is not None
    ]
    missing = sorted({inst.version_of(r) for r, image in by_revision.items() if image is None})
    return applicable, by_revision, missing
