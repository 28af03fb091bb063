"""The rollout planner's data: instances as observed, the policy, the rollout state
persisted in the ScaleSet's status, and the plan (actions, Events, notes).

Rules of this module: everything is frozen; the few functions here derive facts
from the data (batch sizes, an instance's health) and decide nothing. Lookups a
decision needs more than once (the instances by index, a rollout's index sets) are
computed once per object, on first use, so that no rule is quadratic in capacity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Literal

from galleon.core import reasons

Health = Literal["Healthy", "Initializing", "Unhealthy"]
Phase = Literal["Replacing", "Waiting", "Pausing", "RollingBack", "Done"]
Code = Literal["RollingForward", "Completed", "Faulted", "Cancelled"]

BEFORE = reasons.UNHEALTHY_BEFORE_UPGRADE
UPGRADED = reasons.UNHEALTHY_UPGRADED
UPGRADE_TO = "Upgrade to "
"""How the reason of a Delete for an upgrade or a rollback begins."""
FAILED = "Failed"
"""The reason of a Delete of a failed (or evicted) instance: the next pass re-creates it."""


@dataclass(frozen=True)
class UpgradeNotice:
    """The pending-upgrade notice an instance was given (upgrade deferral): the revision
    it will be replaced by, when it was told, and the deadline it was told, after which
    it is replaced without its approval. It lives on the pod (an annotation), so a
    restarted operator finds the same deadline."""

    revision: str
    noticed: datetime
    deadline: datetime


@dataclass(frozen=True)
class Instance:
    """One instance (pod `<scaleset>-<index>`) as observed. `failed`: the pod's phase is
    Failed or Succeeded (evicted, or its node shut down): it never runs again by itself."""

    index: int
    revision: str | None = None
    exists: bool = True
    ready: bool = False
    ready_since: datetime | None = None
    created: datetime | None = None
    deleting: bool = False
    failed: bool = False
    upgrade_notice: UpgradeNotice | None = None
    """The pending-upgrade notice on the pod (None: none, or not readable)."""
    approved: bool = False
    """The pod carries an upgrade approval (set by the workload or its controller)."""


@dataclass(frozen=True)
class Policy:
    max_batch_percent: int = 20
    max_unhealthy_percent: int = 20
    max_unhealthy_upgraded_percent: int = 20
    pause: timedelta = timedelta(0)
    prioritize_unhealthy: bool = False
    rollback: bool = True
    health_timeout: timedelta = timedelta(minutes=5)
    min_ready: timedelta = timedelta(0)
    deferral: timedelta | None = None
    """Upgrade deferral (`osRollingUpgradeDeferral`): a batch member is told of its
    upgrade and replaced once it approves or this long after the notice. None: off,
    members are replaced at once."""
    in_place: bool = False
    """`osImageUpdate: InPlaceIfPossible`: the apply gives a replaced member its new OS
    image in place where its pod allows it, and deletes it otherwise. The planner
    decides the same either way; only its notes say which may happen."""


@dataclass(frozen=True)
class Rollout:
    """The rollout state persisted in `status.rollingUpgrade` (empty tuples, not None)."""

    from_revision: str | None
    to_revision: str
    started: datetime
    code: Code = "RollingForward"
    phase: Phase = "Replacing"
    batch: int = 0
    members: tuple[int, ...] = ()
    phase_since: datetime | None = None
    upgraded: tuple[int, ...] = ()
    failed: tuple[int, ...] = ()
    rolled_back: tuple[int, ...] = ()
    error_code: str = ""
    error_message: str = ""
    cancel_requested: bool = False
    batch_since: datetime | None = None
    """When the running (or last) batch, or the rollback, began: its members' health
    timeout counts from it (`status.rollingUpgrade.batchStartTime`). None in a record
    written by an older galleon: see `batch_start`."""

    @property
    def active(self) -> bool:
        return self.code == "RollingForward" or self.phase == "RollingBack"

    @property
    def batch_start(self) -> datetime:
        """When the members' health timeout started: `batch_since`, or for a record
        without it (an older galleon) the phase's start, or the upgrade's."""
        return self.batch_since or self.phase_since or self.started

    @cached_property
    def member_set(self) -> frozenset[int]:
        """`members` as a set (for membership tests)."""
        return frozenset(self.members)

    @cached_property
    def upgraded_set(self) -> frozenset[int]:
        """`upgraded` as a set (for membership tests)."""
        return frozenset(self.upgraded)

    @cached_property
    def rolled_back_set(self) -> frozenset[int]:
        """`rolled_back` as a set (for membership tests)."""
        return frozenset(self.rolled_back)


@dataclass(frozen=True)
class Create:
    index: int
    revision: str


@dataclass(frozen=True)
class Delete:
    index: int
    reason: str

    @property
    def upgrade_to(self) -> str | None:
        """The revision an upgrade or a rollback replaces the instance with (None: a
        repair or a scale-in).

        >>> Delete(0, "Upgrade to 1.0.2-ab").upgrade_to, Delete(0, FAILED).upgrade_to
        ('1.0.2-ab', None)
        """
        return self.reason.removeprefix(UPGRADE_TO) if self.reason.startswith(UPGRADE_TO) else None


@dataclass(frozen=True)
class Notify:
    """Tell instance `index` that it will be replaced by `revision`: it is replaced once
    it approves, or at `deadline` (the notice given at `noticed`)."""

    index: int
    revision: str
    noticed: datetime
    deadline: datetime


Action = Create | Delete | Notify


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    """One decision: what to do now, the rollout state to persist, the Events to post,
    when to look again (seconds), and why (`notes`, in the order the planner decided)."""

    actions: tuple[Action, ...] = ()
    rollout: Rollout | None = None
    events: tuple[Event, ...] = ()
    requeue_after: float = 30.0
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hold:
    """Something that keeps new batches from starting for now: a closed maintenance
    window, a quarantined version. Like `spec.paused`, a hold lets the running batch
    finish (its health check, a fault, a rollback) but starts no batch and no upgrade.

    `reason` is a CamelCase constant of `galleon.core.reasons`; `message` says why,
    with the numbers ("outside maintenance window: next opens ..."); `until` is when
    the hold lifts, if that is known: the planner looks again no later than then.
    """

    reason: str
    message: str
    until: datetime | None = None


@dataclass(frozen=True)
class Observation:
    """What the planner needs to know of one ScaleSet besides its rollout."""

    capacity: int
    instances: Sequence[Instance] = field(default_factory=tuple)
    """The ScaleSet's pods as observed, in any order (not changed once observed)."""
    current_revision: str | None = None
    target_revision: str | None = None
    may_start: bool = True
    paused: bool = False
    cancel: bool = False
    start_requested: bool = False
    """A user asked for this upgrade: start it even if an earlier attempt at the
    same target faulted or was cancelled."""
    holds: tuple[Hold, ...] = ()
    """What holds new batches back now (`Hold`), in the order they are said; `paused`
    holds them too, and is said in its own words."""

    @cached_property
    def by_index(self) -> Mapping[int, Instance]:
        """The instances by index, built once per observation."""
        return {i.index: i for i in self.instances}


def batch_size(capacity: int, percent: int) -> int:
    """Instances per batch: a share of capacity, at least one.

    >>> batch_size(10, 20), batch_size(2, 20), batch_size(0, 20)
    (2, 1, 0)
    """
    return 0 if capacity == 0 else max(1, capacity * percent // 100)


def total_batches(instances: int, size: int) -> int:
    return 0 if size == 0 else -(-instances // size)


def planned_batches(rollout: Rollout, capacity: int, policy: Policy) -> int:
    """Batches of the upgrade in all: those started, and those its instances not yet
    upgraded (nor in the running batch) still need. It stays put when the upgrade ends
    early, so "batch 2 of 5" still reads so after a fault.

    >>> r = Rollout("1.0.0", "1.0.2", datetime(2026, 1, 1), batch=2, members=(2, 3),
    ...             upgraded=(0, 1))
    >>> planned_batches(r, 10, Policy())
    5
    """
    taken = sum(1 for i in rollout.upgraded_set | rollout.member_set if 0 <= i < capacity)
    size = batch_size(capacity, policy.max_batch_percent)
    return rollout.batch + total_batches(capacity - taken, size)


def health(instance: Instance, policy: Policy, now: datetime) -> Health:
    """Healthy when Ready for minReady; Unhealthy when failed, missing or past the
    timeout since its creation. (A batch member's timeout counts from the batch's
    start instead: `member_health`.)

    >>> from datetime import datetime, timezone
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> health(Instance(0, "1.0.0", ready=True, ready_since=t), Policy(), t)
    'Healthy'
    >>> health(Instance(0, "1.0.0", created=t), Policy(), t + timedelta(minutes=6))
    'Unhealthy'
    """
    if not instance.exists or instance.failed or instance.deleting:
        return "Unhealthy"
    if _ready_for_min_ready(instance, policy, now):
        return "Healthy"
    if instance.created is not None and now - instance.created >= policy.health_timeout:
        return "Unhealthy"
    return "Initializing"


def member_health(
    instance: Instance | None, version: str, policy: Policy, since: datetime, now: datetime
) -> Health:
    """A batch (or rollback) member's health, its timeout counted from `since`, when
    the batch began: Healthy once on `version` and Ready for minReady; Unhealthy when
    failed there, or when the timeout has passed and it is not Healthy, whether it
    never became Ready, is missing (its pod never created), being deleted or still on
    another revision; Initializing until then.

    >>> from datetime import datetime, timezone
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> member_health(None, "1.0.2", Policy(), t, t + timedelta(minutes=4))
    'Initializing'
    >>> member_health(None, "1.0.2", Policy(), t, t + timedelta(minutes=5))
    'Unhealthy'
    >>> member_health(Instance(0, "1.0.2", failed=True), "1.0.2", Policy(), t, t)
    'Unhealthy'
    """
    if instance is not None and settled_on(instance, version):
        if instance.failed:
            return "Unhealthy"
        if _ready_for_min_ready(instance, policy, now):
            return "Healthy"
    if now - since >= policy.health_timeout:
        return "Unhealthy"
    return "Initializing"


def _ready_for_min_ready(instance: Instance, policy: Policy, now: datetime) -> bool:
    return instance.ready and (
        instance.ready_since is None or now - instance.ready_since >= policy.min_ready
    )


def runs_on(instance: Instance | None, version: str) -> bool:
    """Already on `version` and healthy enough to be left alone (not deleting, not failed)."""
    return (
        instance is not None
        and instance.exists
        and not instance.deleting
        and not instance.failed
        and instance.revision == version
    )


def settled_on(instance: Instance | None, version: str) -> bool:
    """Exists on `version` and is not being deleted (it may have failed there)."""
    return (
        instance is not None
        and instance.exists
        and not instance.deleting
        and instance.revision == version
    )


def notice_of(instance: Instance | None, rollout: Rollout) -> UpgradeNotice | None:
    """The instance's notice of this rollout's upgrade: None when it has none, or one of
    another upgrade (another revision, or given before this rollout started: a cancelled
    upgrade's notice is no notice of the next one).

    >>> from datetime import timezone
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> told = UpgradeNotice("1.0.2-a", t, t + timedelta(hours=1))
    >>> r = Rollout("1.0.0-a", "1.0.2-a", t)
    >>> notice_of(Instance(0, "1.0.0-a", upgrade_notice=told), r) == told
    True
    >>> later = Rollout("1.0.0-a", "1.0.2-a", t + timedelta(days=1))
    >>> notice_of(Instance(0, "1.0.0-a", upgrade_notice=told), later) is None
    True
    """
    notice = instance.upgrade_notice if instance is not None else None
    if notice is None or notice.revision != rollout.to_revision:
        return None
    # Whole seconds: the API records both times to the second.
    if notice.noticed < rollout.started.replace(microsecond=0):
        return None
    return notice


def awaiting_approval(
    instances: Iterable[Instance], rollout: Rollout, now: datetime
) -> dict[int, datetime]:
    """Members of the running batch told of this upgrade (upgrade deferral) that have
    not approved it and whose deadline has not passed: index → deadline."""
    if rollout.code != "RollingForward" or rollout.phase != "Replacing":
        return {}
    members = rollout.member_set
    waiting = {}
    for instance in instances:
        notice = notice_of(instance, rollout)
        if (
            instance.index in members
            and notice is not None
            and not instance.approved
            and instance.revision != rollout.to_revision
            and not instance.deleting
            and now < notice.deadline
        ):
            waiting[instance.index] = notice.deadline
    return waiting


def all_settled(observed: Observation, indexes: Iterable[int], version: str) -> bool:
    """Every instance in `indexes` exists on `version` and is not being deleted."""
    seen = observed.by_index
    return all(settled_on(seen.get(index), version) for index in indexes)
