#!/usr/bin/env python3
"""What each namespace the operator is given costs it: memory and API connections.

    python hack/bench_namespaces.py [--namespaces 60] [--cases 1,10,30,60,pattern,all]
                                    [--idle-seconds 20]

A local control plane with `--namespaces` namespaces (ns-0, ns-1, ...), one Gallery in
each. For each case, a fresh operator is started: given the first N namespaces by name
(`--namespace=` per entry, the chart's `watchNamespaces`), all of them as a pattern
(`--namespace=ns-*`), or every namespace (`--all-namespaces`, the chart's default).
Timed until it has reconciled a change to the Gallery of the last namespace it
serves; then, after `--idle-seconds` (past aiohttp's 15 s keep-alive, so the
connections of the start-up burst are gone), its RSS and its open sockets, which
are its connections to kube-apiserver (kopf's watches, its own pod watches, pooled
requests).

Prints Markdown for docs/benchmarks.md. Every process it starts is stopped.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from lightkube import codecs

from galleon.kube.resources import Gallery
from galleon_testkit.controlplane import ControlPlane
from galleon_testkit.operator import OperatorProcess

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT = 300.0
REGION = "r1"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sockets(pid: int) -> int:
    """Open sockets of a process (its TCP connections; the metrics and health
    listeners included)."""
    found = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            continue  # closed meanwhile
    return found


def gallery(namespace: str, description: str = "") -> Any:
    spec: dict[str, Any] = {"location": REGION}
    if description:
        spec["description"] = description
    return codecs.from_dict(
        {
            "apiVersion": "galleon.dev/v1alpha1",
            "kind": "Gallery",
            "metadata": {"name": "g", "namespace": namespace},
            "spec": spec,
        }
    )


def reconciled(client: Any, namespace: str, generation: int) -> bool:
    found = client.get(Gallery, "g", namespace=namespace)
    return int((found.get("status") or {}).get("observedGeneration") or 0) >= generation


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--namespaces", type=int, default=60)
    parser.add_argument("--cases", default="1,10,30,60,pattern,all")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    args = parser.parse_args()
    names = [f"ns-{i}" for i in range(args.namespaces)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="galleon-namespaces-") as workdir:
        work = Path(workdir)
        plane = ControlPlane(work / "cluster", regions={REGION: 1})
        try:
            plane.start()
            plane.apply_crds(ROOT / "crds")
            client = plane.client()
            for name in names:
                client.apply(
                    codecs.from_dict(
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                    ),
                    force=True,
                )
                client.apply(gallery(name), force=True)
            for case in args.cases.split(","):
                if case == "all":
                    given, served, label = [], names, f"all namespaces ({len(names)} present)"
                elif case == "pattern":
                    given, served, label = ["ns-*"], names, f"`ns-*` ({len(names)} match)"
                else:
                    served = names[: int(case)]
                    given, label = served, f"{len(served)} by name"
                operator = OperatorProcess(
                    plane.kubeconfig,
                    work / f"operator-{case}.log",
                    namespaces=given,
                    all_namespaces=case == "all",
                    metrics_port=0,
                )
                began = time.monotonic()
                operator.start()
                try:
                    assert operator.pid is not None
                    last = served[-1]
                    changed = client.apply(gallery(last, f"case {case}"), force=True)
                    generation = int(changed.metadata.generation or 0)
                    while not reconciled(client, last, generation):
                        if time.monotonic() - began > READY_TIMEOUT:
                            raise SystemExit(f"{label}: not reconciled in {READY_TIMEOUT:.0f} s")
                        time.sleep(0.2)
                    ready = time.monotonic() - began
                    time.sleep(args.idle_seconds)  # a benchmark's settling, not a test's wait
                    rows.append((label, ready, rss_mib(operator.pid), sockets(operator.pid)))
                    print(f"{label}: {rows[-1][1:]}", flush=True)
                finally:
                    operator.stop()
        finally:
            plane.stop()
    print(
        f"\nmachine: {os.cpu_count()} cores, {os.uname().release}; idle after "
        f"{args.idle_seconds:g} s\n"
    )
    print("| namespaces served | reconciled the last one after (s) | RSS (MiB) | sockets |")
    print("|---|---|---|---|")
    for label, ready, rss, open_sockets in rows:
        print(f"| {label} | {ready:.1f} | {rss:.0f} | {open_sockets} |")


if __name__ == "__main__":
    main()
