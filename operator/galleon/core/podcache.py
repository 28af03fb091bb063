"""The ScaleSets' pods as one LIST and its watch delivered them: a pass reads its pods
here, with no request (the kube controllers' informer cache).

Rules of this module:
- Pure: the LIST and the watch are sent by `galleon.controllers.scaleset.follow`,
  which hands each result here (`relisted`, `event`, `lost`).
- A scope (a namespace, or `ALL` for a cluster-wide watch) is *synced* from the
  moment its LIST was observed until its watch fails. `view` of a namespace in no
  synced scope is None, and the pass LISTs its pods itself: a gap in the watch never
  shows a pass a world older than a LIST would.
- Pods are kept as `galleon.core.observed.slim` made them, by ScaleSet (the label's
  value) and name; a pod whose label names another ScaleSet moves there, a DELETED
  event removes it. Each is observed (`galleon.core.observed.observe`, pure) once,
  when it arrives: a pass reads its instances as they were observed, and a fleet's
  passes do not observe every pod again on every pass.
- Every UID delivered for a ScaleSet is remembered until its next `view` takes it
  (`View.seen`): a pod created and deleted between two passes was still seen, so
  the expectation of its create is met (`galleon.core.expectations`). Those UIDs are
  bounded (`SEEN_LIMIT` per ScaleSet): past it they are dropped and the view says
  so, as a relist does, by its `synced_at`.

>>> cache = PodCache(monotonic=lambda: 0.0)
>>> cache.view("team-a", "web") is None          # not synced: the pass LISTs
True
>>> pod = {"metadata": {"name": "web-0", "namespace": "team-a", "uid": "u1",
...                     "labels": {"galleon.dev/scaleset": "web"}}}
>>> cache.relisted(ALL, [pod], listed_at=5.0)
>>> view = cache.view("team-a", "web")
>>> [p["metadata"]["name"] for p in view.pods], sorted(view.seen), view.synced_at
(['web-0'], ['u1'], 5.0)
>>> view.instances                               # no index label: not an instance
(None,)
>>> cache.event("DELETED", pod)
>>> cache.view("team-a", "web").pods, cache.view("team-a", "web").seen
((), frozenset())
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from galleon.core import instances as inst
from galleon.core import rollout as ro
from galleon.core.observed import observe, slim

ALL = "*"
"""The scope of a cluster-wide watch."""
SEEN_LIMIT = 4096
"""UIDs remembered per ScaleSet between two of its passes (beyond: dropped, and the
next view's `synced_at` is when, so its expectations resolve as after a relist)."""

Key = tuple[str, str]
"""(namespace, ScaleSet name)."""


@dataclass(frozen=True)
class View:
    """One pass's pods, and what it may conclude from them."""

    pods: tuple[Mapping[str, Any], ...]
    synced_at: float
    """`clock.monotonic()` when the scope's LIST was sent (or its seen UIDs dropped): a
    pod created before it is in `pods` or was seen, if it still existed then."""
    seen: frozenset[str]
    """UIDs delivered since the previous view (a pod may have come and gone since)."""
    instances: tuple[ro.Instance | None, ...] = ()
    """`observe` of each of `pods`, in their order (None: a pod that is no instance)."""


@dataclass
class _Owner:
    pods: dict[str, tuple[dict[str, Any], ro.Instance | None]] = field(default_factory=dict)
    """Pod name → the pod (slim) and what `observe` made of it."""
    seen: set[str] = field(default_factory=set)
    dropped_at: float = 0.0


class PodCache:
    """Pods of the ScaleSets by (namespace, ScaleSet), from one LIST and its watch."""

    def __init__(self, *, monotonic: Callable[[], float], label: str = inst.SCALESET_LABEL) -> None:
        self.label = label
        self._monotonic = monotonic
        """The clock `synced_at` is read on (the caller's `clock.monotonic`)."""
        self._owners: dict[Key, _Owner] = {}
        self._where: dict[tuple[str, str], str] = {}
        """(namespace, pod name) → the ScaleSet it is kept under."""
        self._synced: dict[str, float] = {}
        """Scope → when its LIST was sent (scopes whose watch runs)."""

    def synced_at(self, namespace: str) -> float | None:
        """When the LIST of the scope holding `namespace` was sent (None: no scope of
        it is synced)."""
        at = self._synced.get(namespace)
        return self._synced.get(ALL) if at is None else at

    def view(self, namespace: str, name: str) -> View | None:
        """The pods of ScaleSet `name`, and the UIDs seen since the previous view (which
        this one takes); None while no synced scope holds `namespace`."""
        synced_at = self.synced_at(namespace)
        if synced_at is None:
            return None
        owner = self._owners.get((namespace, name))
        if owner is None:
            return View(pods=(), synced_at=synced_at, seen=frozenset())
        seen, owner.seen = frozenset(owner.seen), set()
        kept = owner.pods.values()
        view = View(
            pods=tuple(pod for pod, _ in kept),
            synced_at=max(synced_at, owner.dropped_at),
            seen=seen,
            instances=tuple(instance for _, instance in kept),
        )
        if not owner.pods:
            del self._owners[(namespace, name)]
        return view

    def relisted(self, scope: str, pods: Iterable[Mapping[str, Any]], *, listed_at: float) -> None:
        """The scope's LIST (sent at `listed_at`) replaces all it held; the UIDs not yet
        taken by a view are kept, and the listed ones added."""
        for key in [k for k in self._owners if scope in (ALL, k[0])]:
            owner = self._owners[key]
            for name in owner.pods:
                self._where.pop((key[0], name), None)
            owner.pods.clear()
        for pod in pods:
            self._put(pod)
        for key in [k for k, o in self._owners.items() if not o.pods and not o.seen]:
            del self._owners[key]
        self._synced[scope] = listed_at

    def lost(self, scope: str) -> None:
        """The scope's watch failed: passes LIST until it is synced again."""
        self._synced.pop(scope, None)

    def event(self, kind: str, pod: Mapping[str, Any]) -> None:
        """One watch event (ADDED, MODIFIED, DELETED) of a pod with the label."""
        if kind == "DELETED":
            meta = pod.get("metadata") or {}
            where = (meta.get("namespace") or "", meta.get("name") or "")
            name = self._where.pop(where, None)
            owner = self._owners.get((where[0], name)) if name is not None else None
            if owner is not None:
                owner.pods.pop(where[1], None)
                self._note(owner, meta.get("uid"))
        elif kind in ("ADDED", "MODIFIED"):
            self._put(pod)

    def forget(self, namespace: str, name: str) -> None:
        """A ScaleSet's daemon stopped: what was seen for it is of no more use."""
        owner = self._owners.get((namespace, name))
        if owner is not None:
            owner.seen.clear()
            if not owner.pods:
                del self._owners[(namespace, name)]

    def __len__(self) -> int:
        """Pods held."""
        return len(self._where)

    def _put(self, pod: Mapping[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        namespace, name = meta.get("namespace") or "", meta.get("name") or ""
        label = (meta.get("labels") or {}).get(self.label)
        before = self._where.pop((namespace, name), None)
        if before is not None and before != label:
            old = self._owners.get((namespace, before))
            if old is not None:
                old.pods.pop(name, None)
        if not label:
            return
        owner = self._owners.setdefault((namespace, label), _Owner())
        kept = slim(pod)
        owner.pods[name] = (kept, observe(kept))
        self._where[(namespace, name)] = label
        self._note(owner, meta.get("uid"))

    def _note(self, owner: _Owner, uid: str | None) -> None:
        if not uid:
            return
        if len(owner.seen) >= SEEN_LIMIT and uid not in owner.seen:
            owner.seen.clear()
            owner.dropped_at = self._monotonic()
        owner.seen.add(uid)
