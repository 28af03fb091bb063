"""Conditions as the Kubernetes API conventions define them.

Rules of this module:
- `lastTransitionTime` changes only when a condition's status flips;
- a condition is always written (Unknown with a reason when inputs are missing);
- reasons are the constants of `galleon.core.reasons`;
- every resource carries the kstatus trio Ready / Reconciling / Stalled;
- conditions are written as the API serializes them (camelCase, RFC 3339 times);
- nothing here reads the clock: `now` is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from galleon.api.common import Condition, ConditionStatus
from galleon.core import reasons

Update = tuple[str, ConditionStatus, str, str]
"""(type, status, reason, message)."""

MAX_MESSAGE = 32768
"""The API's limit on a condition message."""


def condition(
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: datetime,
    previous: Iterable[Condition] = (),
) -> Condition:
    """A condition whose `lastTransitionTime` is kept from `previous` unless status flips.

    >>> from datetime import datetime, timezone
    >>> t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> t1 = datetime(2026, 1, 2, tzinfo=timezone.utc)
    >>> first = condition("Ready", "False", "Pending", "", generation=1, now=t0)
    >>> condition("Ready", "False", "Other", "", generation=2, now=t1, previous=[first]
    ...           ).last_transition_time == t0
    True
    """
    before = next((c for c in previous if c.type == type_), None)
    transition = now if before is None or before.status != status else before.last_transition_time
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time=transition,
    )


def merged(
    status: Mapping[str, Any] | None,
    generation: int | None,
    updates: Iterable[Update],
    now: datetime,
) -> list[dict[str, Any]]:
    """The `conditions` list after `updates`, keeping the other types as they were.

    >>> from datetime import datetime, timezone
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> out = merged({}, 3, [("Ready", "True", "Reconciled", "ok")], t)
    >>> out[0]["type"], out[0]["observedGeneration"], out[0]["reason"]
    ('Ready', 3, 'Reconciled')
    """
    previous = [Condition.model_validate(c) for c in (status or {}).get("conditions") or []]
    new = {
        type_: condition(
            type_,
            state,
            reason,
            message[:MAX_MESSAGE],
            generation=generation,
            now=now,
            previous=previous,
        )
        for type_, state, reason, message in updates
    }
    result = [new.pop(c.type) if c.type in new else c for c in previous]
    result.extend(new.values())
    return [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in result]


def kstatus(
    ready: bool, reason: str, message: str, *, progressing: bool = False, stalled: bool = False
) -> list[Update]:
    """Ready / Reconciling / Stalled in the shape kstatus, Argo CD and Flux read.

    >>> [u[:2] for u in kstatus(False, "Replicating", "1/3 regions", progressing=True)]
    [('Ready', 'False'), ('Reconciling', 'True'), ('Stalled', 'False')]
    """
    return [
        (reasons.READY, "True" if ready else "False", reason, message),
        (
            reasons.RECONCILING,
            "True" if progressing else "False",
            reason if progressing else reasons.RECONCILED,
            message if progressing else "",
        ),
        (
            reasons.STALLED,
            "True" if stalled else "False",
            reason if stalled else reasons.NOT_STALLED,
            message if stalled else "",
        ),
    ]


def reason_of(status: Mapping[str, Any] | None, type_: str) -> tuple[str, str] | None:
    """(status, reason) of one condition as last written, if any.

    >>> reason_of({"conditions": [{"type": "Ready", "status": "True", "reason": "Ok"}]}, "Ready")
    ('True', 'Ok')
    """
    for c in (status or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c.get("status", ""), c.get("reason", "")
    return None


def find(conditions: Iterable[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Iterable[Condition], type_: str) -> bool:
    found = find(conditions, type_)
    return found is not None and found.status == "True"
