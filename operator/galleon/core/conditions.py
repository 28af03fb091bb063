"""Conditions as the Kubernetes API conventions define them, and their reasons.

Rules of this module:
- `lastTransitionTime` changes only when a condition's status flips;
- a condition is always written (Unknown with a reason when inputs are missing);
- reasons are CamelCase constants defined here, in one place, so docs, tests and
  alerts can rely on them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from galleon.api.common import Condition, ConditionStatus

# Condition types.
READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
SOURCE_RESOLVED = "SourceResolved"
DELETION_HELD = "DeletionHeld"
UPGRADING = "Upgrading"
DEGRADED = "Degraded"
PARENT_FOUND = "ParentFound"

# Reasons shared by several kinds.
RECONCILED = "Reconciled"
INVALID_SPEC = "InvalidSpec"
PROGRESSING = "Progressing"
NOT_STALLED = "NotStalled"
IDLE = "Idle"
PENDING = "Pending"

# Parents.
GALLERY_NOT_FOUND = "GalleryNotFound"
DEFINITION_NOT_FOUND = "ImageDefinitionNotFound"
PARENT_PRESENT = "ParentPresent"
VERSION_CONFLICT = "Conflict"

# Replication.
REPLICATING = "Replicating"
REPLICATED = "Replicated"
REPLICATION_FAILED = "ReplicationFailed"
SOURCE_NOT_FOUND = "SourceNotFound"
UNAUTHORIZED = "Unauthorized"
REGISTRY_UNAVAILABLE = "RegistryUnavailable"
UNKNOWN_REGION = "UnknownRegion"
NOT_ENOUGH_REGISTRIES = "NotEnoughRegistries"
SOURCE_REGION_NOT_TARGETED = "SourceRegionNotTargeted"
REMOVAL_REFUSED = "ReplicaRemovalRefused"
IN_USE = "InUse"
BEFORE_END_OF_LIFE = "BeforeEndOfLife"
AWAITING_SOURCE = "AwaitingSource"
RESOLVED = "Resolved"

# Regions.
NO_NODES = "NoNodes"
REGISTRIES_UNREACHABLE = "RegistriesUnreachable"
NO_REGISTRIES = "NoRegistries"


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


def find(conditions: Iterable[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Iterable[Condition], type_: str) -> bool:
    found = find(conditions, type_)
    return found is not None and found.status == "True"
