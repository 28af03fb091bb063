"""Replication slots (`galleon.controllers.shared.ReplicationSlots`): a namespace at
its own limit waits without holding a global slot, so the other namespaces go on.

Pure asyncio: each "version" is a task that holds its slots until the test lets it
finish; the simulation lets versions of random namespaces arrive and finish in a
seeded random order and checks the invariants after every step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from galleon.controllers.runtime import config_from
from galleon.controllers.shared import ReplicationSlots, Runtime
from galleon.main import parse_args


class Fleet:
    """Versions (tasks) copying under `slots`; each holds its slots until `finish`."""

    def __init__(self, slots: ReplicationSlots) -> None:
        self.slots = slots
        self.copying: dict[str, str] = {}
        """Version → its namespace, while it holds its slots."""
        self.arrived: dict[str, list[str]] = {}
        """Namespace → its versions, in arrival order."""
        self.started: list[str] = []
        self._done: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def arrive(self, namespace: str, version: str) -> None:
        self.arrived.setdefault(namespace, []).append(version)
        self._done[version] = asyncio.Event()
        self._tasks[version] = asyncio.create_task(self._copy(namespace, version))

    async def _copy(self, namespace: str, version: str) -> None:
        async with self.slots.version(namespace):
            self.copying[version] = namespace
            self.started.append(version)
            try:
                await self._done[version].wait()
            finally:
                del self.copying[version]

    def finish(self, version: str) -> None:
        self._done[version].set()

    def cancel(self, version: str) -> None:
        """A version's deletion stops its pass, maybe while it waits for a slot."""
        self._tasks[version].cancel()

    async def settle(self) -> None:
        for _ in range(10):
            await asyncio.sleep(0)

    def holding(self, namespace: str) -> int:
        return sum(1 for ns in self.copying.values() if ns == namespace)

    def waiting(self, namespace: str) -> list[str]:
        return [
            v
            for v in self.arrived.get(namespace, [])
            if v not in self.copying and not self._tasks[v].done()
        ]

    async def close(self) -> None:
        for version in self._done:
            self.finish(version)
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)


@contextmanager
def fleet_of(versions: int, per_namespace: int) -> Iterator[Fleet]:
    yield Fleet(ReplicationSlots(versions=versions, per_region=1, per_namespace=per_namespace))


def run(coroutine: object) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 10))  # type: ignore[arg-type]


def test_a_namespace_at_its_limit_waits_and_another_namespace_copies() -> None:
    async def scenario() -> None:
        with fleet_of(versions=2, per_namespace=1) as fleet:
            for name in ("a1", "a2", "a3"):
                fleet.arrive("a", name)
            await fleet.settle()
            assert fleet.copying == {"a1": "a"}
            # a2 and a3 wait for namespace a's slot, holding no global one:
            assert fleet.slots.copying() == 1 and fleet.slots.waiting("a") == 2
            fleet.arrive("b", "b1")
            await fleet.settle()
            assert fleet.copying == {"a1": "a", "b1": "b"}
            fleet.finish("a1")
            await fleet.settle()
            assert fleet.copying == {"a2": "a", "b1": "b"}  # in arrival order
            await fleet.close()
            assert fleet.slots.copying() == 0 and fleet.slots.waiting("a") == 0

    run(scenario())


def test_the_global_limit_still_holds_across_namespaces() -> None:
    async def scenario() -> None:
        with fleet_of(versions=2, per_namespace=2) as fleet:
            fleet.arrive("a", "a1")
            fleet.arrive("a", "a2")
            fleet.arrive("b", "b1")
            await fleet.settle()
            assert set(fleet.copying) == {"a1", "a2"}
            assert fleet.slots.waiting("b") == 0  # b1 holds b's slot, waits for a global one
            fleet.finish("a2")
            await fleet.settle()
            assert set(fleet.copying) == {"a1", "b1"}
            await fleet.close()

    run(scenario())


def test_a_version_stopped_while_waiting_takes_nothing_and_the_next_one_goes() -> None:
    async def scenario() -> None:
        with fleet_of(versions=2, per_namespace=1) as fleet:
            for name in ("a1", "a2", "a3"):
                fleet.arrive("a", name)
            await fleet.settle()
            fleet.cancel("a2")
            await fleet.settle()
            assert fleet.slots.waiting("a") == 1
            fleet.finish("a1")
            await fleet.settle()
            assert fleet.copying == {"a3": "a"}
            await fleet.close()
            assert fleet.started == ["a1", "a3"]

    run(scenario())


@pytest.mark.parametrize(
    ("versions", "per_namespace", "expected"),
    [
        pytest.param(4, None, 4, id="no-namespace-limit-given-means-the-global-one"),
        pytest.param(4, 2, 2, id="as-given"),
        pytest.param(2, 5, 2, id="never-above-the-global-limit"),
        pytest.param(2, 0, 2, id="zero-is-not-given"),
    ],
)
def test_the_namespace_limit(versions: int, per_namespace: int | None, expected: int) -> None:
    slots = ReplicationSlots(versions=versions, per_region=1, per_namespace=per_namespace)
    assert slots.per_namespace == expected


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        pytest.param([], {}, (4, 2), id="defaults"),
        pytest.param(["--replication-concurrency=1"], {}, (1, 1), id="default-never-above-global"),
        pytest.param(
            ["--replication-concurrency=2", "--namespace-replication-concurrency=1"],
            {},
            (2, 1),
            id="as-given",
        ),
        pytest.param([], {"GALLEON_NAMESPACE_REPLICATION_CONCURRENCY": "3"}, (4, 3), id="env"),
        pytest.param(
            ["--replication-concurrency=2", "--namespace-replication-concurrency=3"],
            {},
            None,
            id="above-global-refused",
        ),
        pytest.param(["--namespace-replication-concurrency=0"], {}, None, id="zero-refused"),
    ],
)
def test_the_flag(
    argv: list[str],
    env: dict[str, str],
    expected: tuple[int, int] | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("GALLEON_REPLICATION_CONCURRENCY", "GALLEON_NAMESPACE_REPLICATION_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if expected is None:
        with pytest.raises(SystemExit):
            parse_args(argv)
        return
    config = config_from(parse_args(argv))
    assert (config.replication_concurrency, config.namespace_replication_concurrency) == expected
    slots = Runtime.from_config(config).replication
    assert slots.per_namespace == expected[1]


ARRIVE = st.tuples(st.just("arrive"), st.sampled_from(["a", "b", "c"]))
FINISH = st.tuples(st.just("finish"), st.integers(min_value=0, max_value=1000))
STEPS = st.lists(st.one_of(ARRIVE, ARRIVE, FINISH), min_size=3, max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    versions=st.integers(min_value=1, max_value=4),
    per_namespace=st.integers(min_value=1, max_value=4),
    steps=STEPS,
)
def test_simulated_arrivals_and_finishes_keep_the_invariants(
    versions: int, per_namespace: int, steps: list[tuple[str, object]]
) -> None:
    """After every step: at most `versions` copy, at most `per_namespace` of one
    namespace, no version waits while a global slot is free and its namespace has one
    free (nobody waits for nothing), and a namespace's versions start in arrival order."""
    per_namespace = min(per_namespace, versions)

    async def scenario() -> None:
        with fleet_of(versions, per_namespace) as fleet:
            made = 0
            for action, value in steps:
                if action == "arrive":
                    fleet.arrive(str(value), f"{value}{made}")
                    made += 1
                elif fleet.copying:
                    running = sorted(fleet.copying)
                    fleet.finish(running[int(str(value)) % len(running)])
                await fleet.settle()
                assert len(fleet.copying) <= versions
                assert fleet.slots.copying() == len(fleet.copying)
                for namespace in fleet.arrived:
                    assert fleet.holding(namespace) <= per_namespace
                    behind_its_limit = fleet.holding(namespace) + len(fleet.waiting(namespace))
                    assert fleet.slots.waiting(namespace) == max(
                        0, behind_its_limit - per_namespace
                    )
                    if fleet.waiting(namespace):
                        assert (
                            len(fleet.copying) == versions
                            or fleet.holding(namespace) == per_namespace
                        ), f"{namespace} waits with a slot free everywhere"
                    started = [v for v in fleet.started if v in fleet.arrived[namespace]]
                    assert started == fleet.arrived[namespace][: len(started)]
            await fleet.close()
            assert fleet.slots.copying() == 0

    run(scenario())


async def _holding_region(
    slots: ReplicationSlots, namespace: str, region: str, holding: list[str], done: asyncio.Event
) -> None:
    async with slots.regions([region], namespace):
        holding.append(namespace)
        await done.wait()


@pytest.mark.parametrize(("per_region", "share"), [(1, 1), (2, 1), (3, 2), (4, 2)])
async def test_one_namespace_holds_at_most_its_share_of_a_region(
    per_region: int, share: int
) -> None:
    """A tenant whose copies into a region stall (a drip-fed source) fills at most
    half of the region's slots, rounded up: another tenant's copy still starts."""
    slots = ReplicationSlots(versions=8, per_region=per_region, per_namespace=8)
    assert slots.region_share == share
    holding: list[str] = []
    done = asyncio.Event()
    stalled = [
        asyncio.create_task(_holding_region(slots, "team-a", "east", holding, done))
        for _ in range(per_region)
    ]
    for _ in range(20):
        await asyncio.sleep(0)
    assert holding == ["team-a"] * share
    assert slots.region_holders("team-a", "east") == per_region
    other = asyncio.create_task(_holding_region(slots, "team-b", "east", holding, done))
    for _ in range(20):
        await asyncio.sleep(0)
    if share < per_region:
        assert holding[-1] == "team-b", "the other tenant found no slot of the region"
    done.set()
    await asyncio.gather(*stalled, other)
    assert sorted(holding) == ["team-a"] * per_region + ["team-b"]
    assert slots.region_holders("team-a", "east") == 0
