"""Replication plans for an ImageVersion, as pure functions.

Rules of this module:
- A region's replica locations are its registries in the order the Region lists
  them; a version with N replicas in a region lives in the first N of them. So
  the layout follows from the spec and the Regions alone, and an operator
  restarted mid-way computes the same layout again.
- A replica counts as done only when its recorded digest equals the version's
  source digest; anything else is copied (again). Copying is idempotent: blobs
  already present are skipped by the copier, so "again" costs a few HEADs.
- Replicas no longer wanted (region removed, count lowered) are removed only when
  the safety profile allows it; otherwise they are kept and reported as refused.
- A region that cannot hold what is asked (unknown region, fewer registries than
  replicas) is Failed with a reason; the other regions go on.
- Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from galleon.api.imageversion import (
    AggregatedReplicationState,
    PublishingProfile,
    RegionalReplicationState,
    ReplicaState,
)
from galleon.core import reasons, replica_states


@dataclass(frozen=True, order=True)
class Location:
    """One replica location: a registry of a region."""

    region: str
    registry: str


@dataclass(frozen=True)
class RegionLayout:
    """Where a version should live in one target region, or why it cannot."""

    region: str
    wanted: int
    locations: tuple[Location, ...] = ()
    error_reason: str = ""
    error_message: str = ""


def layout(
    profile: PublishingProfile, regions: Mapping[str, Sequence[str]]
) -> dict[str, RegionLayout]:
    """Desired replica locations per target region.

    `regions` maps each existing Region's name to its registry names, in order.

    >>> from galleon.api.imageversion import PublishingProfile
    >>> p = PublishingProfile(target_regions=[{"name": "east", "regional_replica_count": 2},
    ...                                       {"name": "west"}, {"name": "gone"}])
    >>> plan = layout(p, {"east": ["a", "b", "c"], "west": []})
    >>> [loc.registry for loc in plan["east"].locations]
    ['a', 'b']
    >>> plan["west"].error_reason, plan["gone"].error_reason
    ('NotEnoughRegistries', 'UnknownRegion')
    """
    result: dict[str, RegionLayout] = {}
    for target in profile.target_regions:
        wanted = profile.replicas_for(target.name)
        registries = regions.get(target.name)
        if registries is None:
            result[target.name] = RegionLayout(
                target.name,
                wanted,
                error_reason=reasons.UNKNOWN_REGION,
                error_message=f'no Region named "{target.name}" exists',
            )
        elif len(registries) < wanted:
            result[target.name] = RegionLayout(
                target.name,
                wanted,
                error_reason=reasons.NOT_ENOUGH_REGISTRIES,
                error_message=(
                    f'region "{target.name}" has {len(registries)} registry replica '
                    f"location(s), {wanted} requested"
                ),
            )
        else:
            locations = tuple(Location(target.name, name) for name in registries[:wanted])
            result[target.name] = RegionLayout(target.name, wanted, locations)
    return result


@dataclass(frozen=True)
class Recorded:
    """A replica as the status last recorded it."""

    location: Location
    state: ReplicaState
    digest: str | None = None


@dataclass(frozen=True)
class Plan:
    """What to do next for one version.

    copy: locations that must receive the image (queued, failed, or of another digest).
    keep: locations already complete at the source digest (verify cheaply, do not copy).
    remove: locations no longer wanted, to delete now.
    refused: locations no longer wanted that the safety profile keeps.
    """

    copy: tuple[Location, ...] = ()
    keep: tuple[Location, ...] = ()
    remove: tuple[Location, ...] = ()
    refused: tuple[Location, ...] = ()


def plan(
    layouts: Mapping[str, RegionLayout],
    recorded: Iterable[Recorded],
    source_digest: str,
    *,
    allow_deletion: bool,
) -> Plan:
    """Compare the desired layout with what the status recorded.

    >>> east = RegionLayout("east", 2, (Location("east", "a"), Location("east", "b")))
    >>> done = Recorded(Location("east", "a"), "Completed", "sha256:1")
    >>> old = Recorded(Location("west", "a"), "Completed", "sha256:1")
    >>> p = plan({"east": east}, [done, old], "sha256:1", allow_deletion=True)
    >>> [l.registry for l in p.copy], [l.registry for l in p.keep], p.remove
    (['b'], ['a'], (Location(region='west', registry='a'),))
    """
    by_location = {r.location: r for r in recorded}
    wanted = {loc for region in layouts.values() for loc in region.locations}
    copy, keep = [], []
    for location in sorted(wanted):
        record = by_location.get(location)
        if record and record.state == "Completed" and record.digest == source_digest:
            keep.append(location)
        else:
            copy.append(location)
    unwanted = sorted(loc for loc in by_location if loc not in wanted)
    # A replica that never held anything needs no deletion, only forgetting.
    removable = [loc for loc in unwanted if by_location[loc].state != "Queued"]
    if allow_deletion:
        return Plan(tuple(copy), tuple(keep), tuple(removable), ())
    return Plan(tuple(copy), tuple(keep), (), tuple(removable))


RETRYING = "retrying: "
"""How the message of a replica starts while a transient failure of its copy is retried
(`ReplicaProgress.retry`); the status keeps the message, so a restarted operator still
knows the replica is being retried, and why."""


@dataclass
class ReplicaProgress:
    """Live progress of one replica (mutable: the copier updates it as bytes flow)."""

    location: Location
    state: ReplicaState = "Queued"
    bytes_done: int = 0
    bytes_total: int = 0
    bytes_copied: int = 0
    bytes_skipped: int = 0
    digest: str | None = None
    message: str = ""
    retained: bool = False
    """No longer wanted, but kept: something still pulls its copy (`holders`)."""

    def move(self, state: ReplicaState, message: str | None = None) -> None:
        """Go to `state` (as `galleon.core.replica_states` allows); `message` replaces
        the replica's message when given.

        >>> r = ReplicaProgress(Location("east", "a"))
        >>> r.move("Replicating"); r.state
        'Replicating'
        """
        self.state = replica_states.transition(self.state, state)
        if message is not None:
            self.message = message

    def retry(self, why: str) -> None:
        """A copy attempt failed transiently (`why`): Replicating, to be tried again.

        >>> r = ReplicaProgress(Location("east", "a"), "Replicating")
        >>> r.retry("Unavailable: 503"); r.message, r.retrying
        ('retrying: Unavailable: 503', True)
        """
        self.move("Replicating", f"{RETRYING}{why}")

    @property
    def retrying(self) -> bool:
        """Replicating after a transient failure, waiting for (or making) another attempt."""
        return self.state == "Replicating" and self.message.startswith(RETRYING)


@dataclass(frozen=True)
class RegionSummary:
    """One region's line of `replicationStatus.summary`."""

    region: str
    state: RegionalReplicationState
    progress: int
    details: str
    desired_replicas: int
    completed_replicas: int
    bytes_copied: int
    bytes_skipped: int
    bytes_total: int
    replicas: tuple[ReplicaProgress, ...] = field(default_factory=tuple)


def summarize_region(
    layout_: RegionLayout,
    replicas: Sequence[ReplicaProgress],
    *,
    refused: Sequence[Location] = (),
) -> RegionSummary:
    """Fold the replicas of one region into its state, progress and details.

    Failed wins (the region cannot be used), then Removing, Replicating, Queued;
    Completed only when every wanted replica is complete.

    >>> east = RegionLayout("east", 1, (Location("east", "a"),))
    >>> r = ReplicaProgress(Location("east", "a"), "Replicating", 50, 200)
    >>> s = summarize_region(east, [r])
    >>> s.state, s.progress, s.completed_replicas
    ('Replicating', 25, 0)
    """
    wanted = set(layout_.locations)
    mine = [r for r in replicas if r.location.region == layout_.region]
    completed = sum(1 for r in mine if r.location in wanted and r.state == "Completed")
    total = sum(r.bytes_total for r in mine if r.location in wanted)
    done = sum(min(r.bytes_done, r.bytes_total) for r in mine if r.location in wanted)
    failed = [r for r in mine if r.state == "Failed"]
    state: RegionalReplicationState
    details = ""
    if layout_.error_reason:
        state, details = "Failed", f"{layout_.error_reason}: {layout_.error_message}"
    elif failed:
        state = "Failed"
        details = "; ".join(f"{r.location.registry}: {r.message}" for r in failed)
    elif any(r.state == "Removing" for r in mine):
        state = "Removing"
    elif completed == len(wanted):
        state = "Completed"
    elif any(r.state == "Replicating" for r in mine):
        state = "Replicating"
    else:
        state = "Queued"
    if refused:
        kept = ", ".join(loc.registry for loc in refused)
        note = f"kept replica(s) {kept}: safetyProfile.allowDeletionOfReplicatedLocations is false"
        details = f"{details}; {note}" if details else note
    if state == "Completed":
        progress = 100
    elif total:
        progress = min(99, done * 100 // total)
    else:
        progress = 0
    return RegionSummary(
        region=layout_.region,
        state=state,
        progress=progress,
        details=details[:4096],
        desired_replicas=layout_.wanted,
        completed_replicas=completed,
        bytes_copied=sum(r.bytes_copied for r in mine),
        bytes_skipped=sum(r.bytes_skipped for r in mine),
        bytes_total=total,
        replicas=tuple(sorted(mine, key=lambda r: r.location)),
    )


def aggregate(summaries: Sequence[RegionSummary]) -> tuple[AggregatedReplicationState, str]:
    """The aggregated state and "completed/total" regions.

    Completed when every region is; Failed when at least one failed and none is
    still moving; InProgress while anything moves; Unknown with no region.

    >>> ok = RegionSummary("a", "Completed", 100, "", 1, 1, 0, 0, 0)
    >>> bad = RegionSummary("b", "Failed", 0, "x", 1, 0, 0, 0, 0)
    >>> aggregate([ok, bad])
    ('Failed', '1/2')
    """
    if not summaries:
        return "Unknown", "0/0"
    states = [s.state for s in summaries]
    completed = states.count("Completed")
    ratio = f"{completed}/{len(summaries)}"
    if completed == len(summaries):
        return "Completed", ratio
    moving = any(s in ("Queued", "Replicating", "Removing", "Unknown") for s in states)
    if "Failed" in states and not moving:
        return "Failed", ratio
    return "InProgress", ratio


def repository_path(prefix: str, namespace: str, gallery: str, definition: str) -> str:
    """The repository of a definition's versions in every region's registries.

    >>> repository_path("galleon", "team-a", "contoso", "ubuntu-server")
    'galleon/team-a/contoso/ubuntu-server'
    """
    parts = [p.strip("/") for p in (prefix, namespace, gallery, definition) if p.strip("/")]
    return "/".join(parts)
