"""Helpers every controller shares: conditions as JSON, version facts, listing.

Rules of this module: conditions are computed with `galleon.core.conditions` (so
`lastTransitionTime` only moves when a status flips) and written as the API
serializes them (camelCase, RFC 3339 times); every resource carries the kstatus
trio Ready / Reconciling / Stalled.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from galleon.api.common import Condition, ConditionStatus
from galleon.core import conditions as cond
from galleon.core.versions import RegionFacts, VersionFacts
from galleon.metrics import RECONCILE_DURATION, RECONCILE_TOTAL


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Update = tuple[str, ConditionStatus, str, str]
"""(type, status, reason, message)."""


def conditions(
    status: Mapping[str, Any] | None, generation: int | None, updates: Iterable[Update]
) -> list[dict[str, Any]]:
    """The `conditions` list after `updates`, keeping the other types as they were.

    >>> out = conditions({}, 3, [("Ready", "True", "Reconciled", "ok")])
    >>> out[0]["type"], out[0]["observedGeneration"], out[0]["reason"]
    ('Ready', 3, 'Reconciled')
    """
    previous = [Condition.model_validate(c) for c in (status or {}).get("conditions") or []]
    now = utcnow()
    new = {
        type_: cond.condition(
            type_,
            state,
            reason,
            message[:32768],
            generation=generation,
            now=now,
            previous=previous,
        )
        for type_, state, reason, message in updates
    }
    merged = [new.pop(c.type) if c.type in new else c for c in previous]
    merged.extend(new.values())
    return [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in merged]


def kstatus(
    ready: bool, reason: str, message: str, *, progressing: bool = False, stalled: bool = False
) -> list[Update]:
    """Ready / Reconciling / Stalled in the shape kstatus, Argo CD and Flux read.

    >>> [u[:2] for u in kstatus(False, "Replicating", "1/3 regions", progressing=True)]
    [('Ready', 'False'), ('Reconciling', 'True'), ('Stalled', 'False')]
    """
    return [
        (cond.READY, "True" if ready else "False", reason, message),
        (
            cond.RECONCILING,
            "True" if progressing else "False",
            reason if progressing else cond.RECONCILED,
            message if progressing else "",
        ),
        (
            cond.STALLED,
            "True" if stalled else "False",
            reason if stalled else cond.NOT_STALLED,
            message if stalled else "",
        ),
    ]


def condition_reason(status: Mapping[str, Any] | None, type_: str) -> tuple[str, str] | None:
    """(status, reason) of one condition as last written, if any."""
    for c in (status or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c.get("status", ""), c.get("reason", "")
    return None


def version_facts(obj: Mapping[str, Any]) -> VersionFacts:
    """What the "latest" rule needs from an ImageVersion object (a dict)."""
    spec = obj.get("spec") or {}
    profile = spec.get("publishingProfile") or {}
    excluded_regions = {
        t.get("name"): bool(t.get("excludeFromLatest")) for t in profile.get("targetRegions") or []
    }
    summary = ((obj.get("status") or {}).get("replicationStatus") or {}).get("summary") or []
    regions = {
        s["region"]: RegionFacts(
            completed=s.get("state") == "Completed",
            excluded_from_latest=excluded_regions.get(s["region"], False),
        )
        for s in summary
        if s.get("region") in excluded_regions
    }
    return VersionFacts(
        version=spec.get("version", "0.0.0"),
        excluded_from_latest=bool(profile.get("excludeFromLatest")),
        deleting=bool((obj.get("metadata") or {}).get("deletionTimestamp")),
        regions=regions,
    )


def as_dict(obj: Any) -> dict[str, Any]:
    """A lightkube object (generic or typed) as a plain dict."""
    if isinstance(obj, dict):
        return obj
    result = obj.to_dict()
    return result if isinstance(result, dict) else dict(result)


@contextmanager
def measured(controller: str) -> Iterator[None]:
    """Count and time one reconciliation for the controller metrics."""
    began = time.perf_counter()
    try:
        yield
    except Exception:
        RECONCILE_TOTAL.labels(controller, "error").inc()
        raise
    else:
        RECONCILE_TOTAL.labels(controller, "success").inc()
    finally:
        RECONCILE_DURATION.labels(controller).observe(time.perf_counter() - began)
