"""The batched rolling OS image upgrade of a ScaleSet, as a pure state machine.

`plan(observed, rollout, policy, now)` looks at the instances as they are and at the
rollout state persisted in the ScaleSet's status, and returns what to do now
(create or delete instances), the new rollout state, the Events to post and when
to look again. It does no I/O: the controller reads, calls it, and applies.

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
  `upgradedInstanceHealthTimeout` passed. A member that disappears meanwhile
  (deleted by someone else) is re-created, not counted as unhealthy. If more than
  `maxUnhealthyUpgradedInstancePercent` of all instances upgraded so far are
  unhealthy, the upgrade is Faulted
  (MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade) and, when
  rollback is on, the unhealthy upgraded instances go back to the previous
  version. Otherwise wait `pauseTimeBetweenBatches`, then the next batch.
- Every decision depends only on the observation and the persisted state, so a
  restarted operator continues exactly where the last one stood: members of the
  running batch are finished, never a second batch started early, and an
  instance recorded as upgraded is never upgraded again in the same rollout.
- Every plan says why, in `Plan.notes`: one human-readable line for each check
  that decided (with its numbers: "before batch 3: 3 of 10 unhealthy, at most 2
  allowed (20%): Faulted"), for each wait (with the time left) and for each group
  of actions, in the order the planner made them. Every path sets at least one
  note. Notes explain; nothing decides on them (the controller may log them, tests
  replay them as golden logs).
"""

from galleon.core.rollout.model import (
    BEFORE,
    UPGRADED,
    Code,
    Create,
    Delete,
    Event,
    Health,
    Instance,
    Observation,
    Phase,
    Plan,
    Policy,
    Rollout,
    batch_size,
    health,
    planned_batches,
    total_batches,
)
from galleon.core.rollout.planner import plan, steady

__all__ = [
    "BEFORE",
    "UPGRADED",
    "Code",
    "Create",
    "Delete",
    "Event",
    "Health",
    "Instance",
    "Observation",
    "Phase",
    "Plan",
    "Policy",
    "Rollout",
    "batch_size",
    "health",
    "plan",
    "planned_batches",
    "steady",
    "total_batches",
]
