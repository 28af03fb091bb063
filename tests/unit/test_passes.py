"""A version's deletion stops its replication pass first (`Runtime.passes`): a copy in
flight is cancelled before the copies are removed, and no pass starts after."""

from __future__ import annotations

import asyncio

from galleon.controllers.shared import Passes


def test_stop_cancels_the_running_pass_and_none_starts_after() -> None:
    async def scenario() -> tuple[object, bool, list[str], object]:
        passes, pushed = Passes(), []
        started = asyncio.Event()

        async def copy() -> float:
            started.set()
            await asyncio.sleep(30)  # bytes flowing
            pushed.append("manifest")  # what must never happen after the removal
            return 1.0

        running = asyncio.ensure_future(passes.run("uid-1", copy()))
        await started.wait()
        stopped = await passes.stop("uid-1", timeout=5)
        first = await running
        later = await passes.run("uid-1", copy())
        return first, stopped, pushed, later

    first, stopped, pushed, later = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert stopped and first is None and later is None and pushed == []


def test_a_pass_of_another_version_runs_on() -> None:
    async def scenario() -> float | None:
        passes = Passes()
        await passes.stop("uid-1")

        async def work() -> float:
            return 2.0

        return await passes.run("uid-2", work())

    assert asyncio.run(scenario()) == 2.0


def test_cancelling_the_caller_still_cancels_the_caller() -> None:
    async def scenario() -> bool:
        passes = Passes()

        async def work() -> float:
            await asyncio.sleep(30)
            return 1.0

        outer = asyncio.ensure_future(passes.run("uid-1", work()))
        await asyncio.sleep(0.05)
        outer.cancel()
        try:
            await outer
        except asyncio.CancelledError:
            return True
        return False

    assert asyncio.run(asyncio.wait_for(scenario(), 10))
