#!/usr/bin/env python3
"""Start and stop the local control plane a few times; print start-up figures.

    python hack/bench_controlplane.py [--runs 3]

Prints one Markdown row per run (seconds per component and in total) and the
median total, for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from galleon_testkit.controlplane import ControlPlane

COLUMNS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "nodes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    totals, stops = [], []
    print("| run | " + " | ".join(COLUMNS) + " | total start | stop |")
    print("|---" * (len(COLUMNS) + 3) + "|")
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="galleon-bench-") as workdir:
            plane = ControlPlane(
                Path(workdir), regions={"westcentralus": 1, "southcentralus": 1, "eastus2": 2}
            )
            plane.start()
            began = time.monotonic()
            plane.stop()
            stop = time.monotonic() - began
        seconds = plane.startup_seconds
        totals.append(seconds["total"])
        stops.append(stop)
        cells = " | ".join(f"{seconds.get(c, 0):.1f}" for c in COLUMNS)
        print(f"| {run} | {cells} | {seconds['total']:.1f} | {stop:.1f} |")
    print(
        f"\nmedian start {statistics.median(totals):.1f} s, "
        f"median stop {statistics.median(stops):.1f} s"
    )


if __name__ == "__main__":
    main()
