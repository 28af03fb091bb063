"""Expectations: pods a controller created or deleted and has not yet seen so, so that
it neither sends the same write twice nor waits for a pod that is gone (the kube
controllers' `ControllerExpectations`, keyed by instance index).

Rules of this module:
- An expectation is recorded when a write returns: a create's (index, revision, the
  new pod's UID, when), a delete's (index, the deleted pod's UID, when).
- A create is *pending* until its UID is seen (the pod cache delivered it, even if
  it has gone again since) or a LIST sent after the create returned is observed:
  the apiserver answers a LIST with no resourceVersion from a consistent read, so it
  shows the pod or shows it gone (by kwok, an eviction or a person: the instance may
  be created again at once).
- A delete is pending while the pass still sees that UID at its index without a
  deletion timestamp, and no LIST sent after the delete returned was observed: a
  cache that has not delivered the delete yet does not make the pass delete again.
- No timer decides: what is observed does. Memory only: a restarted controller has
  none, and a duplicate write costs a 409 or a 404.

>>> e = Expectations()
>>> e.created(3, "1.0.2-abc", "u3", at=10.0)
>>> e.pending(3, "1.0.2-abc")
True
>>> e.observe(listed_at=9.5)    # a LIST sent before the create returned: still pending
>>> e.pending(3, "1.0.2-abc")
True
>>> e.observe(listed_at=9.5, seen={"u3"})   # the watch delivered the new pod
>>> e.pending(3, "1.0.2-abc")
False
>>> e.deleted(1, "u1", at=11.0)
>>> e.observe(listed_at=9.5, pods={1: ("u1", False)})   # not seen deleting yet
>>> e.deleting(1, "u1")
True
>>> e.observe(listed_at=9.5, pods={1: ("u1", True)})
>>> e.deleting(1, "u1")
False
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Expectation:
    revision: str
    uid: str
    at: float
    """Monotonic seconds when the write returned."""


class Expectations:
    """Pods created or deleted by this process and not yet observed so, by index."""

    def __init__(self) -> None:
        self._creates: dict[int, Expectation] = {}
        self._deletes: dict[int, Expectation] = {}

    def created(self, index: int, revision: str, uid: str, *, at: float) -> None:
        self._creates[index] = Expectation(revision, uid, at)

    def deleted(self, index: int, uid: str, *, at: float) -> None:
        self._deletes[index] = Expectation("", uid, at)

    def observe(
        self,
        *,
        listed_at: float,
        seen: Collection[str] = (),
        pods: Mapping[int, tuple[str, bool]] | None = None,
    ) -> None:
        """Pods as of a LIST sent at `listed_at`, the UIDs `seen` since the previous
        observation and the pods now seen (index → (UID, deleting)): drop what they
        show."""
        self._creates = {
            index: e for index, e in self._creates.items() if e.at > listed_at and e.uid not in seen
        }
        now = pods or {}
        self._deletes = {
            index: e
            for index, e in self._deletes.items()
            if e.at > listed_at and now.get(index) == (e.uid, False)
        }

    def pending(self, index: int, revision: str) -> bool:
        """Whether instance `index` at `revision` was created and not yet observed."""
        expectation = self._creates.get(index)
        return expectation is not None and expectation.revision == revision

    def deleting(self, index: int, uid: str) -> bool:
        """Whether the pod `uid` at `index` was deleted and not yet observed so."""
        expectation = self._deletes.get(index)
        return expectation is not None and expectation.uid == uid

    def __len__(self) -> int:
        return len(self._creates) + len(self._deletes)
