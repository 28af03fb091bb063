"""A replication pass's retry budget: a source answering 503 for ever costs a pass a
few attempts, then the pass ends and frees its slots; the daemon runs the next one
after a growing backoff, and the version says on its Ready condition that it retries
and why.

Pure asyncio: the registries are a fake whose answers the test scripts, the status
writer keeps what would be written, and the waits between attempts are recorded
instead of slept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from galleon.api.imageversion import ImageVersionSpec
from galleon.api.region import RegistryEndpoint
from galleon.controllers.config import Config
from galleon.controllers.imageversion.apply import RegionInfo, Replicator
from galleon.controllers.imageversion.reconcile import apply_plan_states
from galleon.controllers.loop import Retry, run_daemon
from galleon.controllers.shared import Runtime
from galleon.core import reasons
from galleon.core import replication as rep
from galleon.core.imageversion_status import ReplicationRecord, imageversion_status, set_ready
from galleon.core.pass_budget import PassBudget, retried_in_this_pass
from galleon.core.replication import Location, RegionLayout
from galleon.oci import errors as oci_errors
from galleon.oci.copy import CopyResult

EAST_A, EAST_B = Location("east", "a"), Location("east", "b")
DIGEST = "sha256:" + "1" * 64
NOW = datetime(2026, 6, 1, tzinfo=UTC)
LOGGER = logging.getLogger(__name__)


@pytest.mark.parametrize(
    ("attempts", "failing", "elapsed", "wait", "expected"),
    [
        pytest.param({EAST_A: 1}, [EAST_A], 0.0, 1.0, (EAST_A,), id="first-failure-retried"),
        pytest.param({EAST_A: 3}, [EAST_A], 3.0, 4.0, (), id="attempts-spent"),
        pytest.param(
            {EAST_A: 2, EAST_B: 3}, [EAST_A, EAST_B], 3.0, 2.0, (EAST_A,), id="each-its-own-count"
        ),
        pytest.param({EAST_A: 1}, [EAST_A], 119.5, 1.0, (), id="the-wait-would-end-past-120s"),
        pytest.param({EAST_A: 1}, [EAST_A], 119.5, 0.0, (EAST_A,), id="no-wait-fits"),
        pytest.param({}, [], 0.0, 1.0, (), id="nothing-failing"),
    ],
)
def test_which_replicas_are_retried_in_the_same_pass(
    attempts: dict[Location, int],
    failing: list[Location],
    elapsed: float,
    wait: float,
    expected: tuple[Location, ...],
) -> None:
    budget = PassBudget(attempts=3, seconds=120.0)
    assert retried_in_this_pass(budget, attempts, failing, elapsed=elapsed, wait=wait) == expected


class Source:
    """Registries whose copies answer, attempt after attempt, what the test lists
    (the last answer is repeated for ever); every call is counted."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, tuple[Location, ...]]] = []

    async def fan_out(
        self,
        source: Any,
        namespace: str,
        digest: str,
        destinations: Sequence[Any],
        repository: str,
        *,
        tags: Sequence[str],
        progress: Any,
        staged: Any = None,
    ) -> Mapping[Location, Any]:
        self.calls.append((namespace, tuple(d.location for d in destinations)))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return {d.location: answer for d in destinations}


UNAVAILABLE = oci_errors.Unavailable("src.example: GET /v2/os/blobs/sha256:ab: 503", status=503)
COPIED = CopyResult(DIGEST, "application/vnd.oci.image.manifest.v1+json", bytes_total=10)


class Writer:
    """Keeps the status each forced flush would write."""

    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []

    def touch(self) -> None:
        pass

    async def flush(self, record: ReplicationRecord, *, force: bool = False) -> None:
        if force:
            base = self.written[-1] if self.written else {}
            self.written.append(imageversion_status(record, base, 1, NOW))

    def ready(self) -> dict[str, Any]:
        return next(c for c in self.written[-1]["conditions"] if c["type"] == reasons.READY)


class Sleeps:
    """Records the waits between attempts; a test may hold them until it says go."""

    def __init__(self, hold: asyncio.Event | None = None) -> None:
        self.waits: list[float] = []
        self.hold = hold

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.hold is not None:
            await self.hold.wait()


def replicator(
    runtime: Runtime, namespace: str = "team-a", sleep: Sleeps | None = None
) -> tuple[Replicator, Writer]:
    body = {"metadata": {"namespace": namespace, "name": "os-1-0-0", "uid": "u"}}
    spec = ImageVersionSpec.model_validate(
        {
            "imageDefinitionName": "os",
            "version": "1.0.0",
            "source": {"image": "src.example/os:1.0.0"},
            "publishingProfile": {"targetRegions": [{"name": "east"}]},
        }
    )
    record = ReplicationRecord()
    record.layouts = {"east": RegionLayout("east", 1, (EAST_A,))}
    endpoint = RegistryEndpoint.model_validate({"name": "a", "url": "http://a.example"})
    writer = Writer()
    made = Replicator(
        body,
        spec,
        runtime,
        record,
        writer,  # type: ignore[arg-type]
        {"east": RegionInfo("east", (endpoint,))},
        f"galleon/{namespace}/gallery/os",
        DIGEST,
        sleep=sleep or Sleeps(),
    )
    return made, writer


def runtime_with(source: Source, **config: Any) -> Runtime:
    return Runtime(config=Config(status_interval=3600, **config), registries=source)  # type: ignore[arg-type]


def test_a_source_answering_503_for_ever_costs_a_pass_three_attempts_then_it_ends() -> None:
    source, sleeps = Source(UNAVAILABLE), Sleeps()
    runtime = runtime_with(source)
    copier, writer = replicator(runtime, sleep=sleeps)

    attempts = asyncio.run(asyncio.wait_for(copier.copy([EAST_A]), 5))

    assert attempts == {EAST_A: 3} and len(source.calls) == 3
    # The loop's backoff between attempts (1 s, then 2 s, each with a ±20% jitter).
    assert len(sleeps.waits) == 2
    assert 0.8 <= sleeps.waits[0] <= 1.2 and 1.6 <= sleeps.waits[1] <= 2.4
    replica = copier.record.replica(EAST_A)
    assert replica.state == "Replicating" and replica.retrying
    assert replica.message == f"retrying: Unavailable: {UNAVAILABLE}"
    ready = writer.ready()
    assert (ready["status"], ready["reason"]) == ("False", reasons.REGISTRY_UNAVAILABLE)
    assert ready["message"] == (
        "0/1 regions replicated; 1 replica retrying with backoff: "
        f"east/a: Unavailable: {UNAVAILABLE}"
    )
    assert runtime.replication.copying() == 0  # the pass freed its slots


def test_a_source_that_recovers_within_the_pass_completes_it() -> None:
    source, sleeps = Source(UNAVAILABLE, COPIED), Sleeps()
    copier, writer = replicator(runtime_with(source), sleep=sleeps)

    attempts = asyncio.run(asyncio.wait_for(copier.copy([EAST_A]), 5))

    assert attempts == {EAST_A: 2} and len(sleeps.waits) == 1
    assert copier.record.replica(EAST_A).state == "Completed"
    assert copier.record.replica(EAST_A).message == ""
    assert writer.ready()["reason"] == reasons.REPLICATED


def test_the_time_budget_ends_a_pass_before_a_retry_that_would_start_after_it() -> None:
    source, sleeps = Source(UNAVAILABLE), Sleeps()
    copier, _ = replicator(runtime_with(source, retry_seconds_per_pass=0.5), sleep=sleeps)

    attempts = asyncio.run(asyncio.wait_for(copier.copy([EAST_A]), 5))

    assert attempts == {EAST_A: 1} and sleeps.waits == []
    assert copier.record.replica(EAST_A).retrying


def test_a_retrying_namespace_holds_one_slot_while_another_namespace_copies() -> None:
    """Namespace a: two versions, limit 1 per namespace, 2 slots in all. While a's first
    version retries, b's version copies and a's second waits for a's slot, holding no
    global one; once a's first pass ends, a's second gets its turn."""

    async def scenario() -> None:
        source = Source(UNAVAILABLE)
        runtime = runtime_with(
            source, replication_concurrency=2, namespace_replication_concurrency=1
        )
        hold = asyncio.Event()
        first, _ = replicator(runtime, "a", Sleeps(hold))
        second, _ = replicator(runtime, "a", Sleeps())
        a1 = asyncio.create_task(first.copy([EAST_A]))
        await asyncio.sleep(0.01)  # a1 has failed once, and waits out its backoff
        a2 = asyncio.create_task(second.copy([EAST_A]))
        await asyncio.sleep(0.01)
        assert runtime.replication.copying() == 1 and runtime.replication.waiting("a") == 1

        b_source = Source(COPIED)
        runtime.registries = b_source  # type: ignore[assignment]
        b1, _ = replicator(runtime, "b")
        assert await asyncio.wait_for(b1.copy([EAST_A]), 1) == {EAST_A: 1}
        assert b1.record.replica(EAST_A).state == "Completed"
        runtime.registries = source  # type: ignore[assignment]

        assert [ns for ns, _ in source.calls] == ["a"]  # a2 has not started
        hold.set()
        assert await asyncio.wait_for(a1, 1) == {EAST_A: 3}
        assert await asyncio.wait_for(a2, 1) == {EAST_A: 3}
        assert [ns for ns, _ in source.calls] == ["a"] * 6
        assert runtime.replication.copying() == 0

    asyncio.run(asyncio.wait_for(scenario(), 5))


class Stopper:
    """kopf's daemon stopper, as the loop uses it."""

    def __init__(self) -> None:
        self.set = False

    def __bool__(self) -> bool:
        return self.set

    async def wait(self, timeout: float) -> None:
        await asyncio.sleep(timeout)


def test_passes_that_end_retrying_are_run_again_after_a_growing_backoff() -> None:
    """Five passes: three end retrying (delays 1, 2, 3 asked), one succeeds (its own
    wait, the count starts over), one retries again (delay 1)."""
    outcomes: list[float | Retry] = [Retry("x"), Retry("x"), Retry("x"), 0.01, Retry("x")]
    asked: list[int] = []
    passes = 0
    stopper = Stopper()

    async def run_once() -> float | Retry:
        nonlocal passes
        passes += 1
        if passes == len(outcomes):
            stopper.set = True
        return outcomes[passes - 1]

    def delay(failures: int) -> float:
        asked.append(failures)
        return 0.01

    asyncio.run(
        asyncio.wait_for(run_daemon("replication", stopper, run_once, LOGGER, delay=delay), 5)
    )
    assert passes == 5 and asked == [1, 2, 3, 1]


def test_a_spec_change_during_the_backoff_runs_the_next_pass_at_once() -> None:
    """No busy loop, and no deaf one: with a backoff of an hour, two passes in 0.3 s
    are the first and the one the spec change asked for."""
    passes = 0
    stopper = Stopper()
    generation = {"seen": 1, "now": 1}

    async def run_once() -> float | Retry:
        nonlocal passes
        passes += 1
        generation["seen"] = generation["now"]
        return Retry("503")

    async def scenario() -> None:
        loop = asyncio.create_task(
            run_daemon(
                "replication",
                stopper,
                run_once,
                LOGGER,
                changed=lambda: generation["now"] != generation["seen"],
                delay=lambda _: 3600.0,
            )
        )
        await asyncio.sleep(0.1)
        assert passes == 1
        generation["now"] = 2
        await asyncio.sleep(1.2)  # `changed` is looked at every second at most
        assert passes == 2
        stopper.set = True
        await asyncio.wait_for(loop, 2)

    asyncio.run(asyncio.wait_for(scenario(), 5))


def test_a_replica_retrying_keeps_its_state_and_message_into_the_next_pass() -> None:
    """A restarted operator, or the next pass, plans from the status: the replica being
    retried stays Replicating with its message (Ready keeps saying why), while a
    replica merely interrupted mid-copy is queued again."""
    record = ReplicationRecord()
    record.replica(EAST_A).move("Replicating")
    record.replica(EAST_A).retry("Unavailable: 503")
    record.replica(EAST_B).move("Replicating")
    plan = rep.Plan((EAST_A, EAST_B), (), (), ())
    apply_plan_states(record, plan, DIGEST)
    assert (record.replica(EAST_A).state, record.replica(EAST_A).message) == (
        "Replicating",
        "retrying: Unavailable: 503",
    )
    assert record.replica(EAST_B).state == "Queued"


@pytest.mark.parametrize(
    ("replicas", "reason", "message"),
    [
        pytest.param(
            {EAST_A: ("Replicating", "retrying: Unavailable: 503"), EAST_B: ("Queued", "")},
            reasons.REGISTRY_UNAVAILABLE,
            "0/1 regions replicated; 1 replica retrying with backoff: east/a: Unavailable: 503",
            id="one-retrying",
        ),
        pytest.param(
            {
                EAST_A: ("Replicating", "retrying: Unavailable: 503"),
                EAST_B: ("Replicating", "retrying: Unavailable: timeout"),
            },
            reasons.REGISTRY_UNAVAILABLE,
            "0/1 regions replicated; 2 replicas retrying with backoff: east/a: Unavailable: 503",
            id="two-retrying-first-named",
        ),
        pytest.param(
            {EAST_A: ("Replicating", ""), EAST_B: ("Completed", "")},
            reasons.REPLICATING,
            "0/1 regions replicated",
            id="copying-without-trouble",
        ),
    ],
)
def test_ready_says_the_version_retries_and_why(
    replicas: dict[Location, tuple[str, str]], reason: str, message: str
) -> None:
    record = ReplicationRecord()
    record.layouts = {"east": RegionLayout("east", 2, (EAST_A, EAST_B))}
    for location, (state, note) in replicas.items():
        replica = record.replica(location)
        replica.state, replica.message = state, note  # type: ignore[assignment]
    ready, reconciling, stalled = set_ready(record.summaries())
    assert (ready[1], ready[2], ready[3]) == ("False", reason, message)
    assert (reconciling[1], stalled[1]) == ("True", "False")
