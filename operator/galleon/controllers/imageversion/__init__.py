"""The ImageVersion controller: publish a version once, replicate it to every target
region, delete its copies when it goes.

Files by concern: `handlers` (kopf wiring), `reconcile` (one pass, as a recipe),
`apply` (remove, verify and copy against the registries), `status_writer`
(throttled status writes), `deletion`. The decisions are pure, in `galleon.core`:
`replication` (layout and plan), `replica_states` (the transition table),
`imageversion_status`.
"""
