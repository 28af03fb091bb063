"""Giving freed memory back to the kernel (glibc's `malloc_trim`).

glibc raises its mmap threshold to the size of each mapped block freed, so after the
first TLS connection closes, the next connections' 256 KiB buffers (asyncio's) come
from the heap, and the heap keeps them once they are freed: the small objects
allocated around them hold it up. A burst of connections (kopf's have no limit; at
start, hundreds of objects are handled at once) would then stay in the RSS: 209 MiB
70 s after 300 Galleries were reconciled, against 152 MiB with a trim every
`TRIM_SECONDS` (a trim of a 200 MiB heap takes about 9 ms; docs/benchmarks.md,
"Freed memory given back"). Fixing the threshold instead (108 MiB) maps and unmaps
every 1 MiB chunk a copy streams: one copy fell from 0.95x to 0.66x regctl's
throughput.

Rules of this module: `trim()` is the only call; on a C library without
`malloc_trim` it does nothing and says so (False).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
from collections.abc import AsyncIterator, Callable

logger = logging.getLogger(__name__)
TRIM_SECONDS = 30.0
"""How often `trimming` gives freed memory back."""


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        function = ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = (ctypes.c_size_t,), ctypes.c_int
    return function


_TRIM = _malloc_trim()


def trim() -> bool:
    """Give the heap's free pages back to the kernel; whether any were (False also
    when the C library has no `malloc_trim`)."""
    return bool(_TRIM(0)) if _TRIM is not None else False


@contextlib.asynccontextmanager
async def trimming(every: float = TRIM_SECONDS) -> AsyncIterator[None]:
    """`trim()` every `every` seconds while the block runs."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(every)
            trim()

    if _TRIM is None:
        logger.info("no malloc_trim in this C library: freed memory stays with the heap")
        yield
        return
    task = asyncio.ensure_future(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
