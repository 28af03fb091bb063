"""Whether a ScaleSet's upgrade may start, on whose behalf, and under which limits.

`upgrade_intent(...)` is the part of a ScaleSet pass between "what is observed"
and "what the rollout planner is asked": it works out the revision instances run,
where an upgrade would start from, whether the user started or cancelled one
through the control annotations, who starts it, and the planner's policy. It
does no I/O and reads no clock; `record_start` completes it once the planner has
answered.

Rules of this module (cloud semantics, docs/rollout.md):
- A newer version reaching the region starts an upgrade when the ScaleSet follows
  "latest" with automatic OS upgrades on (started by Platform).
- A changed instance model or pinned version starts one in Rolling or Automatic
  mode (started by User); Manual mode waits for the start annotation.
- The `galleon.dev/start-upgrade` annotation, set to a time later than the last
  upgrade's start, starts one in any mode, even to a version that faulted before.
- The `galleon.dev/cancel-upgrade` annotation, set to a time at or after the
  running upgrade's start, cancels it (once).
- Nothing is upgraded without a health source (a readiness probe on the OS
  container), and "latest" never moves an instance backwards.
- Automatic mode applies a model change to every instance at once, with no
  health limits (the cloud's "all at once").
- Holds (`ro.Hold`) keep every new batch and every new upgrade back, whoever
  started it: they are composed here, in `upgrade_intent`, and the planner honours
  them as it honours `spec.paused`.
- Maintenance windows (`galleon.core.windows`) gate every batch of every upgrade:
  Platform or User, Rolling or Automatic mode, one started by the start annotation
  too; outside them (or when they cannot be read) they are a hold.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from galleon.api.scaleset import LATEST, ScaleSetSpec
from galleon.core import instances as inst
from galleon.core import reasons, times, windows
from galleon.core import rollout as ro
from galleon.core.versions import is_newer, version_key

StartedBy = Literal["User", "Platform"]
LastAction = Literal["Start", "Cancel"]

AUTOMATIC_MODEL_PERCENT = 100
"""Mode Automatic applies a model change to every instance at once (one batch)."""


@dataclass(frozen=True)
class UpgradeTrigger:
    """Whether an upgrade may start without being asked, and on whose behalf."""

    may_start: bool
    started_by: StartedBy
    model_change: bool
    """The instance model (not only the image version) differs between the revisions."""
    reason: str
    message: str
    """Why no upgrade starts ("" when nothing needs saying)."""


@dataclass(frozen=True)
class Controls:
    """The user's upgrade controls, from the ScaleSet's annotations (None: not set,
    or not a time)."""

    start_at: datetime | None = None
    cancel_at: datetime | None = None
    refused: tuple[str, ...] = ()
    """Why each control annotation that is set but is not a time with a zone was
    ignored (annotations are not validated at admission: this is the user's only
    word that the value did nothing)."""

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, str]) -> Controls:
        """The controls in `annotations`; a value that is not an RFC 3339 time with a
        zone (`times.parse`) is no control, and `refused` says why.

        >>> controls = Controls.from_annotations({inst.START_ANNOTATION: "2026-03-01T12:00:00"})
        >>> controls.start_at is None
        True
        >>> print(controls.refused[0])
        galleon.dev/start-upgrade ignored: '2026-03-01T12:00:00' has no time zone: add Z or ...
        """
        refused = []
        for key in (inst.START_ANNOTATION, inst.CANCEL_ANNOTATION):
            why = times.refusal(annotations.get(key))
            if why is not None:
                refused.append(f"{key} ignored: {why}")
        return cls(
            start_at=times.parse_or_none(annotations.get(inst.START_ANNOTATION)),
            cancel_at=times.parse_or_none(annotations.get(inst.CANCEL_ANNOTATION)),
            refused=tuple(refused),
        )


@dataclass(frozen=True)
class RecordedUpgrade:
    """The upgrade as `status.rollingUpgrade` recorded it (all empty before the first)."""

    rollout: ro.Rollout | None = None
    started_by: StartedBy | None = None
    last_action: LastAction = "Start"
    last_action_time: str | None = None


@dataclass(frozen=True)
class UpgradeIntent:
    """What a pass asks the rollout planner, and what it needs to record afterwards."""

    current: str | None
    """The revision most live instances run (None: no instance and no completed upgrade)."""
    source: str | None
    """Where an upgrade would start from: what most instances not on the target run."""
    trigger: UpgradeTrigger
    start_requested: bool
    """The start annotation asks for an upgrade from `source` to the target now."""
    rollout: ro.Rollout | None
    """The recorded rollout, with a new cancel request applied."""
    starter: StartedBy
    """Who an upgrade starting in this pass is started by."""
    policy: ro.Policy
    last_action: LastAction
    last_action_time: str | None
    recorded_started_by: StartedBy | None
    refused_controls: tuple[str, ...] = ()
    """Why a control annotation was ignored (`Controls.refused`), for the status to say."""
    holds: tuple[ro.Hold, ...] = ()
    """What holds new batches and upgrades back in this pass: the maintenance windows'
    hold first, then `upgrade_intent`'s `holds`, in the order they are said."""
    window: windows.Verdict | None = None
    """What the maintenance windows say at this pass's `now` (None: not evaluated)."""

    def observation(
        self, spec: ScaleSetSpec, instances: Sequence[ro.Instance], target: str | None
    ) -> ro.Observation:
        """The planner's view of the fleet for this intent."""
        return ro.Observation(
            capacity=spec.capacity,
            instances=instances,
            current_revision=self.source,
            target_revision=target,
            may_start=self.trigger.may_start,
            paused=spec.paused,
            start_requested=self.start_requested,
            holds=self.holds,
        )


@dataclass(frozen=True)
class StartRecord:
    """Who started the upgrade now recorded, and the last user action on it."""

    starting: bool
    """The planner started a new upgrade in this pass."""
    started_by: StartedBy
    last_action: LastAction
    last_action_time: str | None


def current_revision(observed: Sequence[ro.Instance]) -> str | None:
    """The revision most live instances run (ties: the higher version).

    >>> current_revision([ro.Instance(0, "1.0.0-a"), ro.Instance(1, "1.0.1-a")])
    '1.0.1-a'
    >>> current_revision([]) is None
    True
    """
    counts = Counter(i.revision for i in observed if i.exists and not i.deleting and i.revision)
    if not counts:
        return None
    return max(counts, key=lambda r: (counts[r], revision_sort_key(r)))


def revision_sort_key(revision: str) -> tuple[int, int, int]:
    """Sort key of a revision (or a bare version) by its version; (0, 0, 0) for text
    that is not one.

    >>> revision_sort_key("1.2.3-abc"), revision_sort_key("unknown")
    ((1, 2, 3), (0, 0, 0))
    """
    try:
        return version_key(inst.version_of(revision))
    except ValueError:
        return (0, 0, 0)


def trigger(
    spec: ScaleSetSpec, current: str | None, target: str | None, health_source: bool
) -> UpgradeTrigger:
    """The module's rules for an upgrade starting without being asked.

    `current` and `target` are revisions (`<version>-<model hash>`).
    """
    if current is None or target is None or current == target:
        return UpgradeTrigger(False, "Platform", False, reasons.IDLE, "")
    model_change = inst.hash_of(current) != inst.hash_of(target)
    current_version, target_version = inst.version_of(current), inst.version_of(target)
    if not health_source:
        return UpgradeTrigger(
            False,
            "User",
            model_change,
            reasons.NO_HEALTH_SOURCE,
            "the OS container has no readinessProbe: galleon does not upgrade instances "
            "whose health it cannot see",
        )
    if model_change or spec.image_reference.version != LATEST:
        # Why: a change the user made (template or pinned version) is theirs to roll.
        allowed = spec.upgrade_policy.mode != "Manual"
        return UpgradeTrigger(
            allowed,
            "User",
            model_change,
            reasons.MODEL_CHANGED if allowed else reasons.MANUAL_UPGRADE_PENDING,
            f"the instance model changed ({current_version} to {target_version})"
            + ("" if allowed else f"; mode Manual: annotate {inst.START_ANNOTATION} to upgrade"),
        )
    if not is_newer(target_version, current_version):
        return UpgradeTrigger(
            False,
            "Platform",
            False,
            reasons.NO_DOWNGRADE,
            f"latest in the region is {target_version}, older than {current_version}; "
            "latest never moves backwards (pin a version to downgrade)",
        )
    if spec.upgrade_policy.automatic_os_upgrade_policy.enable_automatic_os_upgrade:
        return UpgradeTrigger(True, "Platform", False, reasons.NEW_VERSION_AVAILABLE, "")
    return UpgradeTrigger(
        False,
        "Platform",
        False,
        reasons.UPGRADE_AVAILABLE,
        f"{target_version} is available in the region; automatic OS upgrades are off: "
        f"annotate {inst.START_ANNOTATION} to upgrade",
    )


def policy_for(spec: ScaleSetSpec, started_by: StartedBy, model_change: bool) -> ro.Policy:
    """The planner's limits for an upgrade started by `started_by` (cloud semantics):
    Platform upgrades roll back unless automatic rollback is disabled, User upgrades
    when the rolling policy says so. With `osRollingUpgradeDeferral`, every upgrade
    defers each replacement until the instance approves or `maxOSUpgradeDeferral`
    passed: to an instance, a new model replaces it as a new OS image does."""
    rolling = spec.upgrade_policy.rolling_upgrade_policy
    automatic = spec.upgrade_policy.automatic_os_upgrade_policy
    at_once = model_change and spec.upgrade_policy.mode == "Automatic"
    if started_by == "Platform":
        rollback = not automatic.disable_automatic_rollback
    else:
        rollback = rolling.rollback_failed_instances_on_policy_breach
    return ro.Policy(
        max_batch_percent=AUTOMATIC_MODEL_PERCENT
        if at_once
        else rolling.max_batch_instance_percent,
        max_unhealthy_percent=100 if at_once else rolling.max_unhealthy_instance_percent,
        max_unhealthy_upgraded_percent=(
            100 if at_once else rolling.max_unhealthy_upgraded_instance_percent
        ),
        pause=times.duration(rolling.pause_time_between_batches, timedelta(0)),
        prioritize_unhealthy=rolling.prioritize_unhealthy_instances,
        rollback=rollback,
        health_timeout=times.duration(
            rolling.upgraded_instance_health_timeout, timedelta(minutes=5)
        ),
        min_ready=timedelta(seconds=spec.min_ready_seconds),
        deferral=(
            times.duration(automatic.max_os_upgrade_deferral, timedelta(hours=1))
            if automatic.os_rolling_upgrade_deferral
            else None
        ),
        in_place=spec.upgrade_policy.os_image_update == "InPlaceIfPossible",
    )


def upgrade_intent(
    spec: ScaleSetSpec,
    instances: Sequence[ro.Instance],
    target: str | None,
    recorded: RecordedUpgrade,
    controls: Controls,
    now: datetime,
    holds: Sequence[ro.Hold] = (),
) -> UpgradeIntent:
    """Everything the planner is asked in one pass, by the module's rules.

    `holds` are what else keeps new batches back in this pass (a quarantined version):
    the planner lets the running batch finish and starts nothing while any holds.
    The maintenance windows' hold, when they allow no batch at `now`, comes first.
    """
    previous = recorded.rollout
    current = current_revision(instances)
    if current is None and previous is not None and previous.code == "Completed":
        # Why: with every instance gone, the fleet still "runs" what it last completed.
        current = previous.to_revision
    # Where an upgrade would start from: what most instances *not* on the target run
    # (after a partial upgrade the majority may already run the target).
    outdated = [i for i in instances if i.revision != target]
    source = current_revision(outdated) if target and outdated else current
    health_source = inst.has_health_source(spec)
    found = trigger(spec, source, target, health_source)
    start_requested = (
        controls.start_at is not None
        and health_source
        and target is not None
        and current is not None
        and source is not None
        and target != source
        and (previous is None or controls.start_at > previous.started)
    )
    rollout = previous
    last_action, last_action_time = recorded.last_action, recorded.last_action_time
    if (
        rollout is not None
        and rollout.code == "RollingForward"
        and controls.cancel_at is not None
        and controls.cancel_at >= rollout.started
        and not rollout.cancel_requested
    ):
        rollout = replace(rollout, cancel_requested=True)
        last_action, last_action_time = "Cancel", times.format(now)
    starter: StartedBy = "User" if start_requested else found.started_by
    window = windows.verdict(spec.upgrade_policy.maintenance_windows, now)
    window_hold = window.hold()
    running = rollout is not None and rollout.active
    started_by = (recorded.started_by if running else starter) or starter
    return UpgradeIntent(
        current=current,
        source=source,
        trigger=found,
        start_requested=start_requested,
        rollout=rollout,
        starter=starter,
        policy=policy_for(spec, started_by, found.model_change),
        last_action=last_action,
        last_action_time=last_action_time,
        recorded_started_by=recorded.started_by,
        refused_controls=controls.refused,
        holds=(*([window_hold] if window_hold else []), *holds),
        window=window,
    )


def record_start(
    intent: UpgradeIntent, previous: ro.Rollout | None, new: ro.Rollout | None, now: datetime
) -> StartRecord:
    """Who the rollout the planner returned is started by, and the last action on it:
    a new rollout is started by this pass's starter, at `now`."""
    starting = new is not None and (previous is None or new.started != previous.started)
    if starting:
        return StartRecord(True, intent.starter, "Start", times.format(now))
    return StartRecord(
        False,
        intent.recorded_started_by or intent.starter,
        intent.last_action,
        intent.last_action_time,
    )
