#!/usr/bin/env python3
"""Where a ScaleSet rollout's API requests go: kube-apiserver's requests by verb and
resource during rollouts of one ScaleSet, next to the operator's own count.

    python hack/bench_rollout_requests.py [--instances 100] [--nodes 6] [--rounds 2]
                                          [--pre-pull on|off]

A ScaleSet of N instances (pinned version, mode Rolling, 20% batches, pods Ready 2 s
after scheduling on kwok) is rolled between two replicated versions, `--rounds`
times. For each rollout, printed: the delta of `apiserver_request_total` (watches
excluded) by (verb, resource, subresource) for the kinds a rollout touches, and the
operator's `galleon_kube_requests_total`. The apiserver counts every client: the
scheduler's bindings and Events, kwok's pod status patches and deletes, and this
script's own GETs of the ScaleSet while it waits (printed, and taken off the GET
row). Everything listens on 127.0.0.1 and stops at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from lightkube.types import PatchType

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_rollout as bench
from galleon.kube.resources import ScaleSet

KINDS = ("pods", "scalesets", "events", "persistentvolumeclaims", "imagedefinitions")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pre-pull", choices=("on", "off"), default="on")
    args = parser.parse_args()
    n = args.instances
    with tempfile.TemporaryDirectory(prefix="galleon-bench-requests-") as tmp:
        workdir = Path(tmp)
        plane = bench.ControlPlane(workdir / "cluster", regions={bench.REGION: args.nodes})
        registry = bench.Registry(workdir / "registry", bench.free_port())
        operator: bench.OperatorProcess | None = None
        try:
            plane.start()
            plane.apply_crds(bench.ROOT / "crds")
            registry.start()
            operator = bench.OperatorProcess(plane.kubeconfig, workdir / "operator.log").start()
            base = bench.build_image(workdir / "img-1.0.0", size=1 << 20, layers=2, seed=1)
            newer = bench.build_image(workdir / "img-1.0.2", size=0, layers=0, seed=2, base=base)
            bench.push_sources(registry, {"1.0.0": base, "1.0.2": newer})
            bench.world(plane.client(), registry)
            client = plane.client()
            document = bench.scaleset("ss", n, "1.0.0", "2s", pre_pull=args.pre_pull == "on")
            bench.apply(client, document)
            bench.wait(lambda: bench.scaleset_on(client, "ss", "1.0.0", n), 300, "ScaleSet ready")
            print(f"{n} instances on {args.nodes} kwok nodes, pre-pull {args.pre_pull}\n")
            print("| rollout | request | count | per instance |")
            print("|---|---|---|---|")
            for round_ in range(args.rounds):
                version = ("1.0.2", "1.0.0")[round_ % 2]
                before = bench.apiserver_requests_by(plane)
                own = bench.operator_metric(operator.metrics_url, "galleon_kube_requests_total")
                began = time.monotonic()
                client.patch(
                    ScaleSet,
                    "ss",
                    {"spec": {"imageReference": {"version": version}}},
                    namespace=bench.NAMESPACE,
                    patch_type=PatchType.MERGE,
                )
                probes = 0

                def done(v: str = version) -> bool:
                    nonlocal probes
                    probes += 1
                    return bench.scaleset_on(client, "ss", v, n)

                bench.wait(done, 600, "rollout to finish", interval=0.2)
                seconds = time.monotonic() - began
                after = bench.apiserver_requests_by(plane)
                ours = (
                    bench.operator_metric(operator.metrics_url, "galleon_kube_requests_total") - own
                )
                name = f"{round_ + 1} (to {version}, {seconds:.1f} s)"
                for key in sorted(after):
                    count = after[key] - before.get(key, 0.0)
                    if key == ("GET", "scalesets", ""):
                        count -= probes  # this script's own waiting
                    if count > 0 and key[1] in KINDS:
                        what = " ".join(k for k in key if k)
                        print(f"| {name} | {what} | {count:.0f} | {count / n:.2f} |")
                print(f"| {name} | this script's GETs of the ScaleSet (taken off) | {probes} | |")
                mine = f"{ours:.0f} | {ours / n:.2f}"
                print(f"| {name} | **by the operator (its own count)** | {mine} |")
        finally:
            if operator is not None:
                operator.stop()
            registry.stop()
            plane.stop()


if __name__ == "__main__":
    main()
