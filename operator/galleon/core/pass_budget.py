"""How long one replication pass keeps retrying transient failures before it ends.

A pass holds one of the operator's few replication slots (its namespace's and a
global one). A source or registry that answers 503 for ever must not keep that
slot for ever, nor hide a spec change until the registry recovers: so a pass
gives each replica at most `PassBudget.attempts` attempts and starts none once
`PassBudget.seconds` have gone by; then it ends, releases its slots, and the
replicas still failing stay Replicating with their "retrying: ..." message. The
next pass (the daemon's capped exponential backoff later, with the spec read
again) tries them again.

Rules of this module: pure; the caller measures `elapsed` and decides `wait`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from galleon.core.replication import Location


@dataclass(frozen=True)
class PassBudget:
    """What one pass may spend on replicas that fail transiently."""

    attempts: int = 3
    """Copy attempts of one replica in one pass, the first included (at least 1)."""
    seconds: float = 120.0
    """Seconds after the pass began copying past which no retry starts (an attempt
    under way is not cut: a slow copy that moves bytes is work, not a retry)."""


def retried_in_this_pass(
    budget: PassBudget,
    attempts: Mapping[Location, int],
    failing: Sequence[Location],
    *,
    elapsed: float,
    wait: float,
) -> tuple[Location, ...]:
    """Of the replicas `failing` transiently, those the pass tries again: fewer than
    `budget.attempts` attempts so far, while waiting `wait` seconds more (the backoff
    before the retry) still ends within `budget.seconds` of the pass. The others are
    left to the next pass.

    >>> a, b = Location("east", "a"), Location("east", "b")
    >>> budget = PassBudget(attempts=3, seconds=120)
    >>> retried_in_this_pass(budget, {a: 1, b: 3}, [a, b], elapsed=5, wait=1)
    (Location(region='east', registry='a'),)
    >>> retried_in_this_pass(budget, {a: 1}, [a], elapsed=119.5, wait=1)
    ()
    """
    if elapsed + wait > budget.seconds:
        return ()  # the retry would start after the budget: the next pass makes it
    return tuple(loc for loc in failing if attempts.get(loc, 0) < max(1, budget.attempts))
