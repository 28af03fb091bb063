"""Expectations: pods a controller created and has not yet seen, so that it neither
creates them twice nor waits for them once they are gone (the kube controllers'
`ControllerExpectations`, keyed by instance index).

Rules of this module:
- An expectation is recorded when a create returns: (index, revision, when).
- It is *pending* only while no pod LIST sent after that moment has been observed:
  such a LIST could not show the pod yet, so creating it again would be a duplicate.
- A LIST sent after the create is authoritative (the apiserver answers a LIST with
  no resourceVersion from a consistent read): it either shows the pod (the
  expectation is met) or does not (the pod was deleted meanwhile, by kwok, an
  eviction or a person: the expectation is cleared, and the instance may be created
  again at once). Either way the expectation is dropped. No timer decides: what is
  observed does.
- Memory only: a restarted controller has none, and a duplicate create costs a 409.

>>> e = Expectations()
>>> e.created(3, "1.0.2-abc", at=10.0)
>>> e.pending(3, "1.0.2-abc")
True
>>> e.observe(listed_at=9.5)    # a LIST sent before the create returned: still pending
>>> e.pending(3, "1.0.2-abc")
True
>>> e.observe(listed_at=10.5)   # a LIST sent after it: met or cleared, by what it showed
>>> e.pending(3, "1.0.2-abc")
False
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Expectation:
    revision: str
    created_at: float
    """Monotonic seconds when the create returned."""


class Expectations:
    """Pods created by this process and not yet observed, by instance index."""

    def __init__(self) -> None:
        self._by_index: dict[int, Expectation] = {}

    def created(self, index: int, revision: str, *, at: float) -> None:
        self._by_index[index] = Expectation(revision, at)

    def observe(self, *, listed_at: float) -> None:
        """A pod LIST sent at `listed_at` was observed: drop what it could show."""
        self._by_index = {
            index: expectation
            for index, expectation in self._by_index.items()
            if expectation.created_at > listed_at
        }

    def pending(self, index: int, revision: str) -> bool:
        """Whether instance `index` at `revision` was created after the last LIST observed."""
        expectation = self._by_index.get(index)
        return expectation is not None and expectation.revision == revision

    def __len__(self) -> int:
        return len(self._by_index)
