"""The ScaleSet controller: keep `capacity` instances in the region, on the version
they follow, and roll newer versions out in batches with health gates and rollback.

Files by concern: `handlers` (kopf wiring), `reconcile` (one pass, as a recipe),
`snapshot` (what a pass observed), `apply` (pod and disk I/O), `metrics`. The
decisions are pure, in `galleon.core`: `upgrade_trigger` (may an upgrade start),
`rollout` (the batched planner), `claims` (data disks), `scaleset_status`.
"""
