"""The operator's one clock.

Rules of this module: the shell reads the time here and nowhere else, once per
pass, and hands it to the pure core as `now`; tests replace the clock by passing
their own `now` to the core, never by patching this module.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> datetime:
    """The wall-clock time in UTC, to the second (as the API records times)."""
    return datetime.now(UTC).replace(microsecond=0)


def monotonic() -> float:
    """Seconds on a clock that never goes back: for intervals and deadlines only."""
    return time.monotonic()
