"""The coalescer of recomputations: a burst costs two runs, each request is answered by
a run that started after it, errors reach the requests of their run."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from galleon.controllers.coalesce import Coalescer


async def settle() -> None:
    """Let every ready task run until each waits (a few loop turns)."""
    for _ in range(10):
        await asyncio.sleep(0)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.gate = asyncio.Event()
        self.fail_next = False

    async def work(self, *arguments: Any) -> None:
        self.calls.append(arguments)
        await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("the refresh failed")


def test_a_burst_during_a_run_costs_one_more_run_with_the_latest_arguments() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        coalescer = Coalescer(recorder.work)
        first = asyncio.create_task(coalescer.run("d", 0, "index"))
        await settle()  # the first run starts and waits at the gate
        assert recorder.calls == [(0, "index")]
        burst = [
            asyncio.create_task(coalescer.run("d", n, "later" if n == 20 else None))
            for n in range(1, 50)
        ]
        await settle()
        assert not first.done() and not any(b.done() for b in burst)
        recorder.gate.set()
        await asyncio.gather(first, *burst)
        # The burst joined one run: its last number, and the index a None did not erase.
        assert recorder.calls == [(0, "index"), (49, "later")]
        assert coalescer.runs == 2

    asyncio.run(scenario())


def test_keys_run_independently_and_a_request_after_the_runs_starts_a_new_one() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        recorder.gate.set()
        coalescer = Coalescer(recorder.work)
        await asyncio.gather(coalescer.run("a", 1), coalescer.run("b", 2))
        assert sorted(recorder.calls) == [(1,), (2,)]
        await coalescer.run("a", 3)
        assert recorder.calls[-1] == (3,)
        assert coalescer.runs == 3

    asyncio.run(scenario())


def test_an_error_reaches_the_requests_of_its_run_only() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        coalescer = Coalescer(recorder.work)
        recorder.fail_next = True
        first = asyncio.create_task(coalescer.run("d", 1))
        await settle()
        second = asyncio.create_task(coalescer.run("d", 2))
        await settle()
        recorder.gate.set()
        with pytest.raises(RuntimeError, match="the refresh failed"):
            await first
        await second  # the next run succeeded
        assert recorder.calls == [(1,), (2,)]

    asyncio.run(scenario())


def test_a_cancelled_request_does_not_cancel_the_run_others_wait_on() -> None:
    async def scenario() -> None:
        recorder = Recorder()
        coalescer = Coalescer(recorder.work)
        impatient = asyncio.create_task(coalescer.run("d", 1))
        patient = asyncio.create_task(coalescer.run("d", 1))
        await settle()
        impatient.cancel()
        await settle()
        recorder.gate.set()
        await asyncio.wait_for(patient, timeout=5)
        assert impatient.cancelled()
        assert recorder.calls == [(1,)]

    asyncio.run(scenario())
