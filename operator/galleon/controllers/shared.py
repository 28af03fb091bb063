"""The controllers' process-wide state, made once at start-up and handed to every
handler through kopf's memo (`memo.runtime`).

Rules of this module: nothing here is module-level: a handler reaches shared
state only through the `Runtime` it is given, so two operators in one process
(tests, benchmarks) cannot see each other's wake-ups or semaphores. All of it is
memory only, an optimisation or a limit of this process: losing it on a restart
costs a pass, never correctness (the API server holds the state).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Hashable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from galleon.controllers.config import Config
from galleon.controllers.registries import Registries

Key = tuple[str, str]
"""(namespace, name) of one object."""
T = TypeVar("T")


class Wakeups:
    """Wake a waiting daemon when something it depends on changed.

    >>> bus = Wakeups()
    >>> event = bus.register(("ns", "web"))
    >>> bus.wake("ns", "web"); event.is_set()
    True
    """

    def __init__(self) -> None:
        self._events: dict[Key, asyncio.Event] = {}
        self._seen: dict[Key, Hashable] = {}
        self._follows: dict[Key, str] = {}
        """Daemon → the namespace whose images it follows."""

    def register(self, key: Key) -> asyncio.Event:
        return self._events.setdefault(key, asyncio.Event())

    def forget(self, key: Key) -> None:
        self._events.pop(key, None)
        self._seen.pop(key, None)
        self._follows.pop(key, None)

    def follow(self, key: Key, source_namespace: str) -> None:
        """`key` follows images of `source_namespace` (its own, or a shared gallery's)."""
        self._follows[key] = source_namespace

    def wake_followers(self, source_namespace: str) -> None:
        """Wake every daemon following images of `source_namespace` (a daemon not yet
        told what it follows is taken to follow its own namespace).

        >>> bus = Wakeups()
        >>> mine, theirs = bus.register(("a", "web")), bus.register(("b", "web"))
        >>> bus.follow(("b", "web"), "a")
        >>> bus.wake_followers("a"); mine.is_set(), theirs.is_set()
        (True, True)
        """
        for key in list(self._events):
            if self._follows.get(key, key[0]) == source_namespace:
                self.wake(*key)

    def wake(self, namespace: str, name: str) -> None:
        event = self._events.get((namespace, name))
        if event is not None:
            event.set()

    def wake_on_change(self, key: Key, fingerprint: Hashable) -> None:
        """Wake `key` only when `fingerprint` differs from the last one seen (so a
        daemon's own status writes do not wake it)."""
        if self._seen.get(key) != fingerprint:
            self._seen[key] = fingerprint
            self.wake(*key)

    def registered(self) -> Iterable[Key]:
        return list(self._events)


class ReplicationSlots:
    """At most `versions` ImageVersions copy at once, and at most `per_region`
    destination registries of one region are written at once, all versions together.

    Region slots are always taken in sorted order, so no two versions can each hold a
    region the other waits for.
    """

    def __init__(self, versions: int, per_region: int) -> None:
        self.per_region = per_region
        self._versions = asyncio.Semaphore(versions)
        self._regions: dict[str, asyncio.Semaphore] = {}

    def versions(self) -> asyncio.Semaphore:
        return self._versions

    @asynccontextmanager
    async def regions(self, names: Iterable[str]) -> AsyncIterator[None]:
        held = sorted(set(names))
        for name in held:
            await self._regions.setdefault(name, asyncio.Semaphore(self.per_region)).acquire()
        try:
            yield
        finally:
            for name in held:
                self._regions[name].release()


class Passes:
    """The replication pass of each ImageVersion (by UID) running now, so that its
    deletion can stop it first: a copy still in flight must not push after the
    version's copies were removed, and no pass starts for a version once stopped."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._stopped: set[str] = set()

    async def run(self, uid: str, work: Coroutine[Any, Any, T]) -> T | None:
        """Run `work` as the pass of version `uid`; None when `stop` cancelled it (or
        had already been called)."""
        if uid in self._stopped:
            work.close()
            return None
        task = asyncio.ensure_future(work)
        self._running[uid] = task
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the caller itself is being cancelled
            return None
        finally:
            if self._running.get(uid) is task:
                del self._running[uid]

    async def stop(self, uid: str, timeout: float = 30.0) -> bool:
        """Cancel the pass of version `uid`, if one runs, wait for it to end, and let
        none start again. False when it did not end within `timeout` seconds."""
        self._stopped.add(uid)
        task = self._running.get(uid)
        if task is None or task.done():
            return True
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=timeout)
        return bool(done)


@dataclass
class Runtime:
    """Everything the controllers share in one operator process."""

    config: Config
    registries: Registries
    wakeups: Wakeups = field(default_factory=Wakeups)
    replication: ReplicationSlots = field(init=False)
    version_facts: dict[Key, Any] = field(default_factory=dict)
    """What each ImageVersion last meant for "latest" (the definition is refreshed only
    when it changes)."""
    references: dict[Key, tuple[str, str]] = field(default_factory=dict)
    """ScaleSet → the (namespace, name) of the ImageDefinition it follows (its users are
    recounted when that changes)."""
    passes: Passes = field(default_factory=Passes)
    """The replication passes running now (deletion stops them first)."""

    def __post_init__(self) -> None:
        self.replication = ReplicationSlots(
            self.config.replication_concurrency, self.config.region_concurrency
        )

    @classmethod
    def from_config(cls, config: Config) -> Runtime:
        return cls(config=config, registries=Registries(config.operator_namespace))
