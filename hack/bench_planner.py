#!/usr/bin/env python3
"""Time one rollout planner decision (`galleon.core.rollout.plan`) per phase and
capacity, on the event loop's budget: a ScaleSet pass calls it once, and
`planned_batches` twice (status and metrics), every second while a batch is replaced.

    python hack/bench_planner.py [--capacities 100,1000,10000] [--seconds 0.5]

Each case is a fleet of `capacity` healthy instances and a rollout state of the
default policy (batches of 20%), the upgrade two batches in:

- steady: no rollout, the fleet at its target;
- Replacing: batch 3 running, its members deleted and to be created on the target;
- Waiting: batch 3's members on the target, created 10 s ago, not yet Ready;
- between batches: batch 2 judged, the pause over: the before-batch check and
  batch 3's start (its deletes) in one decision;
- planned_batches: the status' and the metrics' count of batches, in Replacing.

Every call gets fresh Observation and Rollout objects, as a pass does (each pass
reads its own). Prints a Markdown table of milliseconds per call (the median of
as many calls as fit in `--seconds`, at least 3) for docs/benchmarks.md. Only
fields every galleon version has are used, so the same script times an older
tree: `PYTHONPATH=<old tree>/operator python hack/bench_planner.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import galleon
from galleon.core import rollout as ro

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
OLD, NEW = "1.0.0-abc", "1.0.2-abc"
POLICY = ro.Policy()


def fleet(capacity: int, upgraded: range, members: range, members_as: str) -> list[ro.Instance]:
    """Healthy instances: `upgraded` on NEW, the rest on OLD; `members` as said
    ("missing", "initializing" on NEW, or "old": still on OLD, Ready)."""
    hour_ago = NOW - timedelta(hours=1)
    instances = []
    for i in range(capacity):
        if i in members and members_as == "missing":
            continue
        if i in members and members_as == "initializing":
            instances.append(ro.Instance(i, NEW, created=NOW - timedelta(seconds=10)))
            continue
        revision = NEW if i in upgraded else OLD
        instances.append(
            ro.Instance(i, revision, ready=True, ready_since=hour_ago, created=hour_ago)
        )
    return instances


def cases(capacity: int) -> dict[str, Callable[[], object]]:
    size = ro.batch_size(capacity, POLICY.max_batch_percent)
    upgraded, members = range(0, 2 * size), range(2 * size, 3 * size)
    running = ro.Rollout(
        OLD,
        NEW,
        NOW - timedelta(minutes=20),
        phase="Replacing",
        batch=3,
        members=tuple(members),
        phase_since=NOW - timedelta(seconds=10),
        upgraded=tuple(upgraded),
    )
    waiting = replace(running, phase="Waiting")
    between = replace(running, phase="Pausing", members=(), phase_since=NOW - timedelta(hours=1))
    at_target = fleet(capacity, range(capacity), range(0), "")
    steady = ro.Observation(capacity, tuple(at_target), NEW, NEW)
    replacing = ro.Observation(
        capacity, tuple(fleet(capacity, upgraded, members, "missing")), OLD, NEW
    )
    checking = ro.Observation(
        capacity, tuple(fleet(capacity, upgraded, members, "initializing")), OLD, NEW
    )
    pausing = ro.Observation(capacity, tuple(fleet(capacity, upgraded, members, "old")), OLD, NEW)

    def decide(observed: ro.Observation, rollout: ro.Rollout | None) -> Callable[[], object]:
        # Fresh objects per call: a pass reads its own (no lookup built by an earlier call).
        return lambda: ro.plan(
            replace(observed), replace(rollout) if rollout else None, POLICY, NOW
        )

    return {
        "steady": decide(steady, None),
        "Replacing": decide(replacing, running),
        "Waiting": decide(checking, waiting),
        "between batches": decide(pausing, between),
        "planned_batches": lambda: ro.planned_batches(replace(running), capacity, POLICY),
    }


def per_call(run: Callable[[], object], seconds: float) -> float:
    """Median milliseconds per call over `seconds` (at least 3 calls)."""
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < 3 or time.perf_counter() < deadline:
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def machine() -> str:
    """The CPU model, cores and load, as far as this system says."""
    model = platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ""
    with contextlib.suppress(OSError):
        load = f", load {os.getloadavg()[0]:.1f}"
    return f"{model}, {os.cpu_count()} cores{load}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacities", default="100,1000,10000")
    parser.add_argument("--seconds", type=float, default=0.5, help="per case")
    args = parser.parse_args()
    capacities = [int(c) for c in args.capacities.split(",")]
    names = list(cases(1))
    print(f"galleon from {galleon.__file__}", file=sys.stderr)
    print(f"Python {platform.python_version()} on {machine()}")
    print()
    print("| capacity | " + " | ".join(f"{n} (ms)" for n in names) + " |")
    print("| ---: | " + " | ".join("---:" for _ in names) + " |")
    for capacity in capacities:
        timed = [per_call(run, args.seconds) for run in cases(capacity).values()]
        print(f"| {capacity} | " + " | ".join(f"{t:.3f}" for t in timed) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
