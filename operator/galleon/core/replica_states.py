"""The life of one replica (a version's copy in one registry), as a transition table.

Rules of this module: a replica's state changes only through `transition`, which
refuses a move the table does not list, so an impossible story ("Removing" then
"Completed") is a bug found at once instead of a status that lies. Staying in a
state is always allowed (a retry, or a pass that finds nothing new).

    Queued ──► Replicating ──► Completed
      ▲  ╲         │  ▲           │
      │   ╲        ▼  │           ▼
      │    ╲──►  Failed ◄──── Removing ◄── (no longer wanted)
      └──────────(wanted again, or a Completed copy vanished)
"""

from __future__ import annotations

from collections.abc import Mapping

from galleon.api.imageversion import ReplicaState

TRANSITIONS: Mapping[ReplicaState, frozenset[ReplicaState]] = {
    # Queued: planned, nothing written yet.
    "Queued": frozenset({"Replicating", "Removing"}),
    # Replicating: bytes flowing; a transient error stays here and retries.
    "Replicating": frozenset({"Completed", "Failed", "Queued", "Removing"}),
    # Completed: verified at the source digest; re-queued when its copy has vanished
    # or the digest changed, removed when no longer wanted.
    "Completed": frozenset({"Queued", "Removing"}),
    # Failed: a permanent error; retried (Queued/Replicating) on a later pass.
    "Failed": frozenset({"Queued", "Replicating", "Removing"}),
    # Removing: being deleted; a failed removal is Failed, a replica wanted again Queued.
    "Removing": frozenset({"Failed", "Queued"}),
}


class IllegalTransition(ValueError):
    """A replica was asked to move where the table does not allow."""


def transition(current: ReplicaState, new: ReplicaState) -> ReplicaState:
    """`new`, when the table allows moving from `current` to it.

    >>> transition("Queued", "Replicating")
    'Replicating'
    >>> transition("Removing", "Completed")
    Traceback (most recent call last):
    ...
    galleon.core.replica_states.IllegalTransition: a replica cannot go from Removing to Completed
    """
    if new != current and new not in TRANSITIONS[current]:
        raise IllegalTransition(f"a replica cannot go from {current} to {new}")
    return new
