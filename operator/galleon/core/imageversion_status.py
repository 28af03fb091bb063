"""An ImageVersion's replication status, computed from its replicas by pure functions.

A pass keeps the live progress of each replica in a `ReplicationRecord` (the
copier moves it as bytes flow); `imageversion_status(record, ...)` turns it into
the status patch. Nothing here does I/O or reads a clock.

Rules of this module:
- Order: replicationStatus (per-region lines, then the aggregate) →
  observedGeneration → conditions, which read the lines. The replication state
  and the conditions derived from it always travel in one patch, so no reader
  sees "Completed" beside "Reconciling".
- A region no longer targeted stays visible while its replicas are removed (or
  their removal failed).
- A region line's `lastTransitionTime` moves only when its state changes.
- One function per condition type, each always setting it: `set_ready` (the
  kstatus trio), `set_removal_refused`, `set_parent_found`.
- `load_record` reads the status back: a restarted operator plans from it, and a
  region's byte counters survive the restart (credited to its first replica).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from galleon.core import reasons, times
from galleon.core import replication as rep
from galleon.core.conditions import Update, kstatus, merged
from galleon.core.replication import Location, ReplicaProgress

MAX_REPLICA_MESSAGE = 1024


@dataclass
class ReplicationRecord:
    """The replicas of one version as this pass knows them (mutable: progress)."""

    layouts: dict[str, rep.RegionLayout] = field(default_factory=dict)
    """Target region → where the version should live there (from the plan)."""
    replicas: dict[Location, ReplicaProgress] = field(default_factory=dict)
    refused: dict[str, list[Location]] = field(default_factory=dict)
    """Region → replicas no longer wanted but kept by the safety profile."""

    def replica(self, location: Location) -> ReplicaProgress:
        """The replica at `location` (a new Queued one if not yet known)."""
        if location not in self.replicas:
            self.replicas[location] = ReplicaProgress(location)
        return self.replicas[location]

    def recorded(self) -> list[rep.Recorded]:
        """The replicas as the plan reads them."""
        return [rep.Recorded(r.location, r.state, r.digest) for r in self.replicas.values()]

    def summaries(self) -> list[rep.RegionSummary]:
        """One summary per targeted region, plus regions that still hold a replica
        (being cleaned up, or kept because something pulls it): a copy that exists is
        never left out of the record, or it would be forgotten, never removed."""
        regions = dict(self.layouts)
        for location, replica in self.replicas.items():
            if location.region not in regions and replica.state != "Queued":
                regions[location.region] = rep.RegionLayout(location.region, 0)
        return [
            rep.summarize_region(
                regions[name],
                [r for r in self.replicas.values() if r.location.region == name],
                refused=self.refused.get(name, ()),
            )
            for name in sorted(regions)
        ]

    def region_complete(self, region: str) -> bool:
        """Every wanted replica of a targeted `region` is Completed."""
        layout = self.layouts.get(region)
        return layout is not None and all(
            self.replica(loc).state == "Completed" for loc in layout.locations
        )


def load_record(status: Mapping[str, Any]) -> ReplicationRecord:
    """The record as the status last wrote it.

    >>> r = load_record({"replicationStatus": {"summary": [{"region": "east",
    ...     "bytesCopied": 7, "replicas": [{"registry": "a", "state": "Completed"}]}]}})
    >>> [(loc.region, p.state, p.bytes_copied) for loc, p in r.replicas.items()]
    [('east', 'Completed', 7)]
    """
    record = ReplicationRecord()
    for region in (status.get("replicationStatus") or {}).get("summary") or []:
        mine = []
        for replica in region.get("replicas") or []:
            location = Location(region["region"], replica["registry"])
            progress = ReplicaProgress(
                location,
                replica["state"],
                bytes_done=replica.get("bytesDone", 0),
                bytes_total=replica.get("bytesTotal", 0),
                digest=replica.get("digest"),
                message=replica.get("message", ""),
                retained=bool(replica.get("retained")),
            )
            record.replicas[location] = progress
            mine.append(progress)
        if mine:
            mine[0].bytes_copied = region.get("bytesCopied", 0)
            mine[0].bytes_skipped = region.get("bytesSkipped", 0)
    return record


def replication_status(
    summaries: Sequence[rep.RegionSummary], recorded: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """`status.replicationStatus` from the region summaries."""
    aggregated, ratio = rep.aggregate(summaries)
    previous = {
        s["region"]: s for s in (recorded.get("replicationStatus") or {}).get("summary") or []
    }
    stamp = times.format(now)
    lines = []
    for s in summaries:
        before = previous.get(s.region) or {}
        changed = before.get("state") != s.state
        lines.append(
            {
                "region": s.region,
                "state": s.state,
                "progress": s.progress,
                "details": s.details,
                "desiredReplicas": s.desired_replicas,
                "completedReplicas": s.completed_replicas,
                "bytesCopied": s.bytes_copied,
                "bytesSkipped": s.bytes_skipped,
                "bytesTotal": s.bytes_total,
                "replicas": [
                    {
                        "registry": r.location.registry,
                        "state": r.state,
                        "bytesDone": r.bytes_done,
                        "bytesTotal": r.bytes_total,
                        **({"digest": r.digest} if r.digest else {}),
                        "message": r.message[:MAX_REPLICA_MESSAGE],
                        **({"retained": True} if r.retained else {}),
                    }
                    for r in s.replicas
                ],
                "lastTransitionTime": stamp if changed else before.get("lastTransitionTime", stamp),
            }
        )
    return {"aggregatedState": aggregated, "completedRegions": ratio, "summary": lines}


def set_ready(summaries: Sequence[rep.RegionSummary]) -> list[Update]:
    """Ready when every region is replicated; Stalled when a region failed and nothing
    moves any more; Reconciling while anything moves (failures named), with reason
    RegistryUnavailable while replicas are retried after transient failures (how many,
    and the first one's error).

    >>> line = rep.summarize_region(
    ...     rep.RegionLayout("east", 1, (Location("east", "a"),)),
    ...     [rep.ReplicaProgress(Location("east", "a"), "Replicating", message="retrying: 503")],
    ... )
    >>> ready = set_ready([line])[0]
    >>> ready[2], ready[3]
    ('RegistryUnavailable', '0/1 regions replicated; 1 replica retrying with backoff: east/a: 503')
    """
    aggregated, ratio = rep.aggregate(summaries)
    failed = "; ".join(f"{s.region}: {s.details}" for s in summaries if s.state == "Failed")
    if aggregated == "Completed":
        return kstatus(True, reasons.REPLICATED, f"replicated to {ratio} regions")
    if aggregated == "Failed":
        return kstatus(False, reasons.REPLICATION_FAILED, failed, stalled=True)
    message = f"{ratio} regions replicated" + (f"; failed: {failed}" if failed else "")
    retrying = [r for s in summaries for r in s.replicas if r.retrying]
    if retrying:
        first = retrying[0]
        count = f"{len(retrying)} replica{'s' if len(retrying) > 1 else ''}"
        where = f"{first.location.region}/{first.location.registry}"
        why = first.message.removeprefix(rep.RETRYING)
        return kstatus(
            False,
            reasons.REGISTRY_UNAVAILABLE,
            f"{message}; {count} retrying with backoff: {where}: {why}",
            progressing=True,
        )
    return kstatus(False, reasons.REPLICATING, message, progressing=aggregated == "InProgress")


def set_removal_refused(record: ReplicationRecord) -> Update:
    """ReplicaRemovalRefused: True while unwanted replicas are kept by the safety
    profile (named), False otherwise."""
    refused = [loc for locations in record.refused.values() for loc in locations]
    if not refused:
        return (reasons.REMOVAL_REFUSED, "False", reasons.RECONCILED, "")
    kept = ", ".join(f"{loc.region}/{loc.registry}" for loc in refused)
    return (
        reasons.REMOVAL_REFUSED,
        "True",
        reasons.REMOVAL_REFUSED,
        f"replicas {kept} are no longer wanted but kept: "
        "safetyProfile.allowDeletionOfReplicatedLocations is false",
    )


def set_removal_held(record: ReplicationRecord) -> Update:
    """ReplicaRemovalHeld: True while replicas no longer wanted are kept because
    something still pulls their copy (who, named), False otherwise."""
    held = sorted((r for r in record.replicas.values() if r.retained), key=lambda r: r.location)
    if not held:
        return (reasons.REMOVAL_HELD, "False", reasons.RECONCILED, "")
    kept = "; ".join(f"{r.location.region}/{r.location.registry}: {r.message}" for r in held)
    return (
        reasons.REMOVAL_HELD,
        "True",
        reasons.IN_USE,
        f"replicas no longer wanted are kept while something pulls them ({kept})",
    )


def set_parent_found() -> Update:
    """ParentFound, once replication runs: the definition and gallery exist."""
    return (reasons.PARENT_FOUND, "True", reasons.PARENT_PRESENT, "")


def replication_conditions(
    record: ReplicationRecord, summaries: Sequence[rep.RegionSummary] | None = None
) -> list[Update]:
    """Every condition a replicating version sets, in order (`summaries`: the record's,
    when the caller has them already)."""
    found = record.summaries() if summaries is None else summaries
    return [
        *set_ready(found),
        set_removal_refused(record),
        set_removal_held(record),
        set_parent_found(),
    ]


def imageversion_status(
    record: ReplicationRecord,
    recorded: Mapping[str, Any],
    generation: int | None,
    now: datetime,
) -> dict[str, Any]:
    """The status patch of a replicating version, in the module's order."""
    summaries = record.summaries()
    return {
        "replicationStatus": replication_status(summaries, recorded, now),
        "observedGeneration": generation,
        "conditions": merged(recorded, generation, replication_conditions(record, summaries), now),
    }


def waiting_status(
    recorded: Mapping[str, Any],
    generation: int | None,
    updates: Sequence[Update],
    now: datetime,
    **fields: Any,
) -> dict[str, Any]:
    """The patch of a version that cannot replicate yet (parents, conflict, source):
    its conditions and any other fields, before any replica is planned."""
    return {
        **fields,
        "observedGeneration": generation,
        "conditions": merged(recorded, generation, updates, now),
    }
