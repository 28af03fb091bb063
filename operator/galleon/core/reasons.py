"""Every condition type and reason galleon writes, in one place.

Rules of this module: a reason is a CamelCase constant defined here and nowhere
else, so docs, tests, alerts and the Argo CD health checks can rely on it;
modules use `reasons.X`, never a string literal. Event reasons are the same
constants when an Event reports a condition's change.
"""

from __future__ import annotations

from typing import Final

# Condition types.
READY: Final = "Ready"
RECONCILING: Final = "Reconciling"
STALLED: Final = "Stalled"
SOURCE_RESOLVED: Final = "SourceResolved"
DELETION_HELD: Final = "DeletionHeld"
UPGRADING: Final = "Upgrading"
DEGRADED: Final = "Degraded"
PARENT_FOUND: Final = "ParentFound"

# Shared by several kinds.
RECONCILED: Final = "Reconciled"
INVALID_SPEC: Final = "InvalidSpec"
PROGRESSING: Final = "Progressing"
NOT_STALLED: Final = "NotStalled"
IDLE: Final = "Idle"
PENDING: Final = "Pending"
REGION_NOT_FOUND: Final = "RegionNotFound"

# Parents.
GALLERY_NOT_FOUND: Final = "GalleryNotFound"
DEFINITION_NOT_FOUND: Final = "ImageDefinitionNotFound"
PARENT_PRESENT: Final = "ParentPresent"
VERSION_CONFLICT: Final = "Conflict"

# Replication (ImageVersion).
REPLICATING: Final = "Replicating"
REPLICATED: Final = "Replicated"
REPLICATION_FAILED: Final = "ReplicationFailed"
SOURCE_NOT_FOUND: Final = "SourceNotFound"
UNAUTHORIZED: Final = "Unauthorized"
REGISTRY_UNAVAILABLE: Final = "RegistryUnavailable"
UNKNOWN_REGION: Final = "UnknownRegion"
NOT_ENOUGH_REGISTRIES: Final = "NotEnoughRegistries"
SOURCE_REGION_NOT_TARGETED: Final = "SourceRegionNotTargeted"
REMOVAL_REFUSED: Final = "ReplicaRemovalRefused"
IN_USE: Final = "InUse"
REMOVAL_HELD: Final = "ReplicaRemovalHeld"
"""A replica the plan no longer wants is kept: a pod or another version still uses it."""
BEFORE_END_OF_LIFE: Final = "BeforeEndOfLife"
AWAITING_SOURCE: Final = "AwaitingSource"
RESOLVED: Final = "Resolved"

# Regions.
NO_NODES: Final = "NoNodes"
REGISTRIES_UNREACHABLE: Final = "RegistriesUnreachable"
NO_REGISTRIES: Final = "NoRegistries"

# Which version a ScaleSet runs (galleon.core.versions.resolve).
NO_VERSION_IN_REGION: Final = "NoVersionInRegion"
LATEST_RESOLVED: Final = "LatestResolved"
VERSION_NOT_FOUND: Final = "VersionNotFound"
VERSION_DELETING: Final = "VersionDeleting"
VERSION_NOT_REPLICATED: Final = "VersionNotReplicated"
VERSION_PINNED: Final = "VersionPinned"
NO_COPY_IN_REGION: Final = "NoCopyInRegion"

# Sharing a gallery's images with other namespaces (galleon.core.sharing).
SHARED: Final = "Shared"
IMAGE_NOT_SHARED: Final = "ImageNotShared"

# Whether an upgrade may start (galleon.core.upgrade_trigger).
NO_HEALTH_SOURCE: Final = "NoHealthSource"
MODEL_CHANGED: Final = "ModelChanged"
MANUAL_UPGRADE_PENDING: Final = "ManualUpgradePending"
NO_DOWNGRADE: Final = "NoDowngrade"
NEW_VERSION_AVAILABLE: Final = "NewVersionAvailable"
UPGRADE_AVAILABLE: Final = "UpgradeAvailable"
UP_TO_DATE: Final = "UpToDate"

# A ScaleSet's instances and upgrade.
INSTANCES_HEALTHY: Final = "InstancesHealthy"
INSTANCES_NOT_HEALTHY: Final = "InstancesNotHealthy"
INSTANCES_UNHEALTHY: Final = "InstancesUnhealthy"
ROLLING_FORWARD: Final = "RollingForward"
ROLLING_BACK: Final = "RollingBack"
PAUSED: Final = "Paused"
UPGRADE_FAULTED: Final = "UpgradeFaulted"
UPGRADE_CANCELLED: Final = "UpgradeCancelled"
FAULTED: Final = "Faulted"
MAX_SURGE_NOT_APPLIED: Final = "MaxSurgeNotApplied"
CREATE_REFUSED: Final = "InstanceCreateRefused"
"""The apiserver refused an instance's pod (its message says why)."""
DISK_CONFLICT: Final = "DataDiskConflict"
"""An instance's data disk name is taken by a claim that is not this ScaleSet's."""

# Maintenance windows (galleon.core.windows): the MaintenanceWindow condition is True
# while batches may start, and its reason is also the planner hold's.
MAINTENANCE_WINDOW: Final = "MaintenanceWindow"
NO_MAINTENANCE_WINDOWS: Final = "NoMaintenanceWindows"
INSIDE_MAINTENANCE_WINDOW: Final = "InsideMaintenanceWindow"
OUTSIDE_DENY_WINDOWS: Final = "OutsideDenyWindows"
OUTSIDE_MAINTENANCE_WINDOW: Final = "OutsideMaintenanceWindow"
INSIDE_DENY_WINDOW: Final = "InsideDenyWindow"
INVALID_MAINTENANCE_WINDOW: Final = "InvalidMaintenanceWindow"

# Any controller: a pass that failed in a way no rule above foresaw.
RECONCILE_ERROR: Final = "ReconcileError"

# Rollout Events and faults (galleon.core.rollout).
ROLLING_UPGRADE_STARTED: Final = "RollingUpgradeStarted"
BATCH_STARTED: Final = "BatchStarted"
BATCH_COMPLETED: Final = "BatchCompleted"
ROLLING_UPGRADE_FAULTED: Final = "RollingUpgradeFaulted"
ROLLING_UPGRADE_COMPLETED: Final = "RollingUpgradeCompleted"
ROLLING_UPGRADE_CANCELLED: Final = "RollingUpgradeCancelled"
ROLLED_BACK: Final = "RolledBack"
UNHEALTHY_BEFORE_UPGRADE: Final = "MaxUnhealthyInstancePercentExceededBeforeRollingUpgrade"
UNHEALTHY_UPGRADED: Final = "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade"


# The image builder (galleon.controllers.builder).
TRIGGERS_SUSPENDED: Final = "TriggersSuspended"
BUILD_SUCCEEDED: Final = "BuildSucceeded"
BUILD_FAILED: Final = "BuildFailed"
BUILD_RUNNING: Final = "BuildRunning"
BUILD_WAITING: Final = "BuildWaiting"
BUILD_STARTED: Final = "BuildStarted"
NO_BUILD_YET: Final = "NoBuildYet"
TEMPLATE_NOT_FOUND: Final = "TemplateNotFound"
TEMPLATE_CHANGED: Final = "TemplateChanged"
INPUT_NOT_FOUND: Final = "InputNotFound"
CHECKSUM_MISMATCH: Final = "ChecksumMismatch"
DOWNLOAD_FAILED: Final = "DownloadFailed"
BUILD_REFUSED: Final = "BuildRefused"
PUSH_FAILED: Final = "PushFailed"
VERSION_REFUSED: Final = "VersionRefused"
BUILD_TIMED_OUT: Final = "BuildTimedOut"
UNCHANGED: Final = "Unchanged"
PUBLISHED: Final = "Published"
FAILED_IN_A_ROW: Final = "FailedBuildsInARow"
TRIGGERS_ACTIVE: Final = "TriggersActive"
VALIDATED: Final = "Validated"
VALIDATION_FAILED: Final = "ValidationFailed"
VALIDATION_PASSED: Final = "ValidationPassed"

# Release waves and quarantine (galleon.core.waves)
VERSION_QUARANTINED: Final = "VersionQuarantined"
QUARANTINE_RELEASED: Final = "QuarantineReleased"
WAITING_FOR_WAVE: Final = "WaitingForWave"
PRE_PULLING: Final = "PrePulling"


def upgrade_ended(code: str) -> str:
    """The Upgrading reason of an upgrade that ended without completing.

    >>> upgrade_ended("Faulted"), upgrade_ended("Cancelled")
    ('UpgradeFaulted', 'UpgradeCancelled')
    """
    return {"Faulted": UPGRADE_FAULTED, "Cancelled": UPGRADE_CANCELLED}.get(code, "Upgrade" + code)
