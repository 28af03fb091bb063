"""Coalesce a burst of requests for the same recomputation into as few runs as are
correct.

Rules of this module:
- At most one run per key at a time. A request that comes while a run is under way
  joins the *next* run (one, however many requests join it), which starts when the
  current one ends: every request is answered by a run that started after it, so it
  sees the world as it was when it asked, or later.
- A request returns (or raises) with the run that answers it; a request cancelled
  while it waits does not cancel that run (others may wait on it too).
- The arguments of the next run are those of the requests that joined it, the latest
  given (not None) value of each position winning.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Next:
    answer: asyncio.Future[None]
    arguments: tuple[Any, ...]


@dataclass
class Coalescer:
    """`await coalescer.run(key, *arguments)` runs `work(*arguments)` on behalf of
    every request for `key` that joined the run."""

    work: Callable[..., Awaitable[None]]
    runs: int = 0
    """How many runs started (for tests and benchmarks)."""
    _next: dict[Hashable, _Next] = field(default_factory=dict)
    _drivers: dict[Hashable, asyncio.Task[None]] = field(default_factory=dict)

    async def run(self, key: Hashable, *arguments: Any) -> None:
        waiting = self._next.get(key)
        if waiting is None:
            answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            # Read even when nobody waits any more (a cancelled request).
            answer.add_done_callback(lambda f: f.cancelled() or f.exception())
            waiting = self._next[key] = _Next(answer, arguments)
        else:
            waiting.arguments = tuple(
                new if new is not None else old
                for new, old in itertools.zip_longest(arguments, waiting.arguments)
            )
        if key not in self._drivers:
            driver = asyncio.get_running_loop().create_task(self._drive(key))
            self._drivers[key] = driver
        await asyncio.shield(waiting.answer)

    async def _drive(self, key: Hashable) -> None:
        try:
            while (current := self._next.pop(key, None)) is not None:
                self.runs += 1
                try:
                    await self.work(*current.arguments)
                except Exception as error:  # the requests of this run raise it
                    current.answer.set_exception(error)
                except BaseException:  # cancelled (the operator stops): so are they
                    current.answer.cancel()
                    raise
                else:
                    current.answer.set_result(None)
        finally:
            self._drivers.pop(key, None)
            # Only when cancelled: a driver that ends normally leaves no next run.
            left = self._next.pop(key, None)
            if left is not None:
                left.answer.cancel()
