"""The batched rolling OS image upgrade of a ScaleSet, as a pure state machine.

`plan(observed, rollout, policy, now)` looks at the instances as they are and at the
rollout state persisted in the ScaleSet's status, and returns what to do now
(create or delete instances), the new rollout state, the Events to post and when
to look again. It does no I/O: the controller reads, calls it, and applies.
`preview(observed, rollout, policy, now)` replays `plan` itself over a simulated
fleet to show the batches still to come (`kubectl galleon plan scaleset NAME`).

Rules of this module (cloud semantics, docs/rollout.md):
- A batch is `max(1, capacity * maxBatchInstancePercent // 100)` instances.
- Before each batch: if more than `maxUnhealthyInstancePercent` of capacity is
  unhealthy (for any reason, any version), the upgrade stops as Faulted with
  MaxUnhealthyInstancePercentExceededBeforeRollingUpgrade.
- A batch replaces its members (delete, then create the same index at the target
  version, with the same data disks; with maxSurge the new instance is created
  first under a surge index and the old one deleted once the new one is healthy
  — not modelled yet: surge is refused as unsupported by the planner's caller).
- After a batch: wait until each member is Healthy, or Unhealthy because
  `upgradedInstanceHealthTimeout` passed since the batch began (recorded as
  `batch_since`; a record without it counts from `phase_since`). A member that is
  still missing then (its pod refused by the apiserver, or no copy of its image in
  the region), still being deleted, or never Ready, is Unhealthy: a batch never
  waits longer than the timeout. A member that disappears meanwhile (deleted by
  someone else) is re-created while the timeout runs; a member whose pod failed
  (evicted, phase Failed) is Unhealthy, not replaced. If more than
  `maxUnhealthyUpgradedInstancePercent` of all instances upgraded so far are
  unhealthy, the upgrade is Faulted
  (MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade) and, when
  rollback is on, the unhealthy upgraded instances go back to the previous
  version, under the same timeout counted from the rollback's start. Otherwise
  wait `pauseTimeBetweenBatches`, then the next batch.
- Upgrade deferral (`Policy.deferral`, `osRollingUpgradeDeferral`): a batch member
  still on another revision is not deleted at once but told (`Notify`: the revision
  and a deadline, `deferral` after the notice); it is deleted once it approved
  (`Instance.approved`) or its deadline passed. The notice lives on the pod
  (`Instance.upgrade_notice`), so a restart keeps the deadline; one of another
  revision or from before the rollout started is no notice. While a member waits,
  the batch's health timeout does not run: it counts from when the last waiting
  member was let go (`batch_since`). Rollbacks, repairs and members whose pod failed
  are never deferred.
- Outside a running batch or rollback, the fleet is kept as a StatefulSet keeps
  its pods: a missing instance is created, a failed one (evicted, phase Failed or
  Succeeded) is deleted and so re-created at the next pass, both at the revision
  that index should run: during an upgrade the target if upgraded, else (or rolled
  back) the source; after a completed one its target; otherwise what most
  instances run. An upgrade starts only on a whole fleet: nothing missing or
  failed below capacity.
- Holds (`Observation.holds`: a closed maintenance window, a quarantined version)
  act as `paused` does: the running batch finishes (its health check, a fault, a
  rollback), but no batch and no upgrade starts while one holds; the notes say who
  holds, why and until when, and the plan looks again no later than the earliest
  `Hold.until`. A cancel still ends the upgrade after its batch, and an upgrade with
  nothing left to replace still completes.
- Every decision depends only on the observation and the persisted state, so a
  restarted operator continues exactly where the last one stood: members of the
  running batch are finished, never a second batch started early, and an
  instance recorded as upgraded is never upgraded again in the same rollout.
- One decision costs O(n log n) in capacity n: lookups go through sets and maps
  built once per observation or rollout state, never through tuples.
- Every plan says why, in `Plan.notes`: one human-readable line for each check
  that decided (with its numbers: "before batch 3: 3 of 10 unhealthy, at most 2
  allowed (20%): Faulted"), for each wait (with the time left) and for each group
  of actions, in the order the planner made them. Every path sets at least one
  note. Notes explain; nothing decides on them (the controller may log them, tests
  replay them as golden logs).
"""

from galleon.core.rollout.model import (
    BEFORE,
    FAILED,
    UPGRADED,
    Action,
    Code,
    Create,
    Delete,
    Event,
    Health,
    Hold,
    Instance,
    Notify,
    Observation,
    Phase,
    Plan,
    Policy,
    Rollout,
    UpgradeNotice,
    awaiting_approval,
    batch_size,
    health,
    member_health,
    notice_of,
    planned_batches,
    total_batches,
)
from galleon.core.rollout.planner import plan, steady
from galleon.core.rollout.preview import Preview, PreviewBatch, preview

__all__ = [
    "BEFORE",
    "FAILED",
    "UPGRADED",
    "Action",
    "Code",
    "Create",
    "Delete",
    "Event",
    "Health",
    "Hold",
    "Instance",
    "Notify",
    "Observation",
    "Phase",
    "Plan",
    "Policy",
    "Preview",
    "PreviewBatch",
    "Rollout",
    "UpgradeNotice",
    "awaiting_approval",
    "batch_size",
    "health",
    "member_health",
    "notice_of",
    "plan",
    "planned_batches",
    "preview",
    "steady",
    "total_batches",
]
