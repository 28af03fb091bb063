"""`galleon.memory`: freed buffers of 256 KiB (asyncio's TLS buffer), kept by the heap
once glibc's mmap threshold has risen, go back to the kernel with `trim()`; and
`trimming` trims on its own while it runs."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import asyncio, sys
from pathlib import Path
from galleon import memory

def rss_kib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

big = bytearray(4 << 20)
del big  # freed: glibc's threshold is now above 4 MiB, so the buffers below are heap
before = rss_kib()
buffers, kept = [], []
for _ in range(200):  # 50 MiB of buffers, each with a small object kept after it
    buffers.append(bytearray(256 * 1024))
    kept.append(bytes(range(200)) * 2)
buffers.pop()  # the last one would go with the heap's top
del buffers
freed = rss_kib() - before
if sys.argv[1] == "trim":
    trimmed = memory.trim()
else:
    async def wait():
        async with memory.trimming(every=0.05):
            for _ in range(200):
                await asyncio.sleep(0.05)
                if rss_kib() - before < 8 * 1024:
                    return True
        return False
    trimmed = asyncio.run(wait())
print(freed, trimmed, rss_kib() - before)
"""


def run(mode: str) -> tuple[int, str, int]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, timeout=60
    )
    freed, trimmed, after = done.stdout.split()
    return int(freed), trimmed, int(after)


def test_freed_buffers_stay_with_the_heap_until_trimmed() -> None:
    freed, trimmed, after = run("trim")
    # (How much of the 50 MiB the heap keeps varies with what else it holds: 27-50 MiB.)
    assert freed > 16 * 1024, f"only {freed} KiB kept after the free: nothing to trim"
    assert trimmed == "True"  # glibc (this machine's and the image's C library)
    assert after < 8 * 1024, f"{after} KiB still resident after the trim"


def test_trimming_gives_them_back_on_its_own() -> None:
    freed, trimmed, after = run("trimming")
    assert freed > 16 * 1024
    assert trimmed == "True", f"{after} KiB still resident after 10 s of trimming"
