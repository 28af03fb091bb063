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
import contextlib
from collections.abc import AsyncIterator, Coroutine, Hashable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from galleon import clock
from galleon.controllers.agent_dispatch import AgentTasks
from galleon.controllers.config import Config
from galleon.controllers.registries import Registries
from galleon.core.podcache import PodCache
from galleon.oci.addresses import AddressPolicy

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
    """At most `versions` ImageVersions copy at once, at most `per_namespace` of them
    from one namespace, and at most `per_region` destination registries of one region
    are written at once, all versions together.

    A version takes its namespace's slot before a global one: versions waiting behind
    their own namespace's limit hold nothing the other namespaces need. Likewise one
    namespace holds at most `region_share` (half, rounded up) of a region's slots: a
    tenant whose sources are slow (a drip-feed holds its slot until the blob's
    deadline) waits behind itself, and another tenant's copy into that region still
    finds a slot. Region slots are always taken in sorted order, the namespace's share
    of each before the region's own, so no two versions can each hold a region the
    other waits for.

    >>> async def copying_in_team_a():
    ...     slots = ReplicationSlots(versions=2, per_region=1, per_namespace=1)
    ...     async with slots.version("team-a"):
    ...         return slots.copying(), slots.waiting("team-a")
    >>> asyncio.run(copying_in_team_a())
    (1, 0)
    """

    def __init__(self, versions: int, per_region: int, per_namespace: int | None = None) -> None:
        """`per_namespace` defaults to `versions` (no limit of its own); it is at least 1
        and at most `versions`."""
        self.per_region = per_region
        self.region_share = max(1, -(-per_region // 2))
        """Slots of one region one namespace may hold at once."""
        self.per_namespace = max(1, min(versions, per_namespace or versions))
        self._versions = asyncio.Semaphore(versions)
        self._copying = 0
        self._namespaces: dict[str, _NamespaceSlots] = {}
        self._regions: dict[str, asyncio.Semaphore] = {}
        self._shares: dict[tuple[str, str], _NamespaceSlots] = {}

    @asynccontextmanager
    async def version(self, namespace: str) -> AsyncIterator[None]:
        """Hold a slot of `namespace`, then a global one, while the block runs."""
        mine = self._namespaces.setdefault(namespace, _NamespaceSlots(self.per_namespace))
        mine.users += 1
        try:
            async with mine.semaphore, self._versions:
                self._copying += 1
                try:
                    yield
                finally:
                    self._copying -= 1
        finally:
            mine.users -= 1
            if not mine.users:  # nobody holds or waits: forget the namespace
                del self._namespaces[namespace]

    def copying(self) -> int:
        """Versions holding a global slot now."""
        return self._copying

    def waiting(self, namespace: str) -> int:
        """Versions of `namespace` waiting behind its own limit now (the semaphores are
        fair: the first `per_namespace` users hold the slots)."""
        mine = self._namespaces.get(namespace)
        return 0 if mine is None else max(0, mine.users - self.per_namespace)

    @asynccontextmanager
    async def regions(self, names: Iterable[str], namespace: str = "") -> AsyncIterator[None]:
        """Hold a slot of each region in `names` for a version of `namespace`, each
        within the namespace's share of that region."""
        async with contextlib.AsyncExitStack() as stack:
            for name in sorted(set(names)):
                await stack.enter_async_context(self._share(namespace, name))
                region = self._regions.setdefault(name, asyncio.Semaphore(self.per_region))
                await stack.enter_async_context(region)
            yield

    @asynccontextmanager
    async def _share(self, namespace: str, region: str) -> AsyncIterator[None]:
        key = (namespace, region)
        share = self._shares.setdefault(key, _NamespaceSlots(self.region_share))
        share.users += 1
        try:
            async with share.semaphore:
                yield
        finally:
            share.users -= 1
            if not share.users:
                del self._shares[key]

    def region_holders(self, namespace: str, region: str) -> int:
        """Versions of `namespace` holding or waiting for its share of `region`."""
        share = self._shares.get((namespace, region))
        return 0 if share is None else share.users


class _NamespaceSlots:
    """The slots of one namespace, and how many versions hold or wait for one."""

    def __init__(self, slots: int) -> None:
        self.semaphore = asyncio.Semaphore(slots)
        self.users = 0


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
    pods: PodCache = field(default_factory=lambda: PodCache(monotonic=clock.monotonic))
    """The ScaleSets' pods as the instances' watch delivered them (fed by
    `galleon.controllers.scaleset.follow`)."""
    replication: ReplicationSlots = field(init=False)
    version_facts: dict[Key, Any] = field(default_factory=dict)
    """What each ImageVersion last meant for "latest" (the definition is refreshed only
    when it changes)."""
    references: dict[Key, tuple[str, str]] = field(default_factory=dict)
    """ScaleSet → the (namespace, name) of the ImageDefinition it follows (its users are
    recounted when that changes)."""
    release_facts: dict[Key, Any] = field(default_factory=dict)
    """What each ScaleSet last meant for its definition's release waves and quarantine
    (the definition is refreshed only when it changes)."""
    passes: Passes = field(default_factory=Passes)
    """The replication passes running now (deletion stops them first)."""
    builds: asyncio.Semaphore = field(init=False)
    """Slots of the image builds running now (`Config.build_concurrency`)."""
    agents: AgentTasks = field(init=False)
    """The copies handed to region agents (`galleon.controllers.agent_dispatch`)."""

    def __post_init__(self) -> None:
        self.builds = asyncio.Semaphore(self.config.build_concurrency)
        self.agents = AgentTasks(self.config.operator_namespace, self.config.agent_timeout)
        self.replication = ReplicationSlots(
            self.config.replication_concurrency,
            self.config.region_concurrency,
            self.config.namespace_replication_concurrency,
        )

    @classmethod
    def from_config(cls, config: Config) -> Runtime:
        policy = AddressPolicy.of(deny=config.deny_cidrs, allow=config.allow_cidrs)
        return cls(config=config, registries=Registries(config.operator_namespace, policy))
