"""The one daemon loop every per-object controller runs, and its one backoff.

Rules of this module: a pass returns the seconds until it wants to run again; a
pass that raises is logged and retried with capped exponential backoff (with
jitter, so many objects failing together do not retry in step) after `on_error`
has said so on the object (a False condition, one Event); a pass that returns
`Retry` (it ended with work failing transiently, and its status says so already)
is retried with the same backoff, without `on_error`. The backoff grows with every
pass in a row that raised or returned `Retry`, and starts over after one that did
neither. The loop sleeps until that time, a wake-up, or the daemon's stop,
whichever comes first. Nothing a pass raises ends the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from galleon import clock

MAX_BACKOFF_SECONDS = 30.0
MAX_WAIT_SECONDS = 3600.0
KOPF_SETTLE_SECONDS = 10.0
"""Longest wait, before a new object's first pass, for kopf's own writes (`kopf_settled`)."""
KOPF_SETTLE_POLL_SECONDS = 0.02


def backoff(attempt: int, jitter: Callable[[], float] = lambda: random.uniform(0.8, 1.2)) -> float:
    """Seconds before retry `attempt` (1, 2, 4, ... capped at 30 s, times a jitter).

    >>> [backoff(n, lambda: 1.0) for n in (1, 2, 3, 10)]
    [1.0, 2.0, 4.0, 30.0]
    """
    return float(min(MAX_BACKOFF_SECONDS, 2 ** max(0, attempt - 1)) * jitter())


@dataclass(frozen=True)
class Retry:
    """What a pass returns when it ended with work left that failed transiently (a
    registry answering 503) and already said so in the object's status: run it again
    after the loop's backoff, which grows while it keeps coming back."""

    why: str
    """For the log: what is retried, e.g. "ns/os-1-0-0: 1 replica retrying"."""


async def run_daemon(
    what: str,
    stopped: Any,
    run_once: Callable[[], Awaitable[float | Retry]],
    logger: logging.Logger | logging.LoggerAdapter[Any],
    *,
    wakeup: asyncio.Event | None = None,
    changed: Callable[[], bool] = lambda: False,
    on_error: Callable[[Exception], Awaitable[None]] | None = None,
    delay: Callable[[int], float] = backoff,
) -> None:
    """Run `run_once` until `stopped` (kopf's daemon stopper) is set.

    Between passes it waits for the time the pass asked for (`delay(n)` seconds after
    the n-th pass in a row that raised or returned `Retry`), until `wakeup` is set or
    `changed()` turns true (checked every second).
    """
    failures = 0
    while not stopped:
        if wakeup is not None:
            wakeup.clear()
        try:
            outcome = await run_once()
            if isinstance(outcome, Retry):
                failures += 1
                wait = delay(failures)
                logger.info("%s: %s; next pass in %.1fs", what, outcome.why, wait)
            else:
                failures, wait = 0, outcome
        except asyncio.CancelledError:
            raise
        except Exception as error:
            failures += 1
            wait = delay(failures)
            logger.exception("%s pass failed; retrying in %.0fs", what, wait)
            if on_error is not None:
                try:
                    await on_error(error)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.warning("%s: the failure could not be reported", what, exc_info=True)
        deadline = clock.monotonic() + min(wait, MAX_WAIT_SECONDS)
        while not stopped and clock.monotonic() < deadline and not changed():
            if wakeup is not None and wakeup.is_set():
                break
            step = min(1.0, max(0.0, deadline - clock.monotonic()))
            if wakeup is None:
                await stopped.wait(step)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), timeout=step)


async def kopf_settled(
    meta: Any,
    stopped: Any,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    *,
    finalizer: str,
    annotation: str,
    timeout: float = KOPF_SETTLE_SECONDS,
) -> bool:
    """Wait until kopf's live `meta` of a new object shows kopf's own writes, its
    `finalizer` and its record of the handled spec (`annotation`), or a deletion;
    whether the daemon should go on (False once it is stopped). After `timeout`
    without them it goes on, and says so in the log.

    kopf patches a new object twice while the object's daemon starts: the finalizer,
    then the handled spec. A pass that writes before then carries a resourceVersion
    that those patches make stale, so its write is refused (409), read again and
    sent again. A copy made before the finalizer would also be left behind by a
    deletion that came first, with no finalizer to run the cleanup. The wait reads
    memory only; it ends with the watch event of kopf's second patch.
    """
    deadline = clock.monotonic() + timeout
    while not stopped:
        if meta.get("deletionTimestamp") or (
            finalizer in (meta.get("finalizers") or ())
            and annotation in (meta.get("annotations") or {})
        ):
            return True
        if clock.monotonic() >= deadline:
            logger.warning("kopf's finalizer and diff base are not on the object yet; going on")
            return True
        await stopped.wait(KOPF_SETTLE_POLL_SECONDS)
    return False
