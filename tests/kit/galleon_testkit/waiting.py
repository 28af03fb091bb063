"""Bounded polling for tests and the harness.

Rules of this module: every wait has a timeout (there is no "wait forever"), the
timeout error says what was awaited and what was last seen, and an exception
raised by the probe counts as "not yet" (the API may be briefly unavailable) but
is reported if the wait times out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not become true in time (an AssertionError, so pytest shows it well)."""


def wait_for(
    probe: Callable[[], T],
    *,
    timeout: float,
    description: str,
    interval: float = 0.25,
) -> T:
    """Call `probe` until it returns something truthy; return that value.

    Example:
        pod = wait_for(lambda: ready_pod(client, "p", ns), timeout=30,
                       description="pod p to be Ready")
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except Exception as error:
            last = error
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"timed out after {timeout:.0f}s waiting for {description}; last: {last!r}"
            )
        time.sleep(interval)


def stays_true(
    probe: Callable[[], bool],
    *,
    duration: float,
    description: str,
    interval: float = 0.5,
) -> None:
    """Assert that `probe()` holds on every poll for `duration` seconds.

    Example: `stays_true(lambda: not is_ready(pod()), duration=10,
    description="never-ready pod stays unready")`.
    """
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        if not probe():
            raise AssertionError(f"no longer true: {description}")
        time.sleep(interval)
