#!/usr/bin/env python3
"""Rolling upgrade on a real node: galleon's ScaleSet against the Deployment
controller, side by side, with real containers, real pulls and real probes.

    python hack/bench_realnode_rollout.py [--instances 20] [--rounds 4] [--surge] [--in-place]
                                          [--fresh-versions] [--pre-pull default|on|off]
                                          [--events FILE]

One control plane with one real node (containerd + kubelet, `galleon_testkit.realnode`)
in the region, one registry, two runnable OS images (busybox and a health endpoint,
`galleon_testkit.osimages`). A ScaleSet of N instances (pinned version, mode Rolling,
20% batches) and a Deployment of N replicas (maxUnavailable 20%, maxSurge 0) run the
same images with the same readiness probe (`/healthz`, every second); the Deployment
pulls the source's copy, the ScaleSet the region's replica, from the same registry.
Each round changes the Deployment's image and the ScaleSet's pinned version and
times until every instance runs the new one and is available; rounds alternate the
order. The first round pulls each image once on the node; later rounds find it
there, as in a fleet whose node already ran the version.

Prints Markdown for docs/benchmarks.md. Needs root and the real-node packages
(hack/setup.sh); everything listens on 127.0.0.1 or the node's bridge and stops at
the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_rollout as common
from galleon_testkit.controlplane import ControlPlane
from galleon_testkit.operator import OperatorProcess
from galleon_testkit.osimages import HEALTH_PATH, PORT, build_os_image
from galleon_testkit.processes import free_port
from galleon_testkit.registry import Registry

REGION = common.REGION
NAMESPACE = common.NAMESPACE


def template(app: str, image: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "containers": [
                {
                    "name": "os",
                    "image": image,
                    "ports": [{"containerPort": PORT}],
                    "readinessProbe": {
                        "httpGet": {"path": HEALTH_PATH, "port": PORT},
                        "periodSeconds": 1,
                        "failureThreshold": 1,
                    },
                }
            ],
        },
    }


def scaleset(
    capacity: int, version: str, surge: bool, in_place: bool, pre_pull: bool | None = None
) -> dict[str, Any]:
    document = common.scaleset("ss", capacity, version, "0s", pre_pull)
    document["spec"]["template"] = template("ss", "set-by-galleon")
    document["spec"]["upgradePolicy"]["rollingUpgradePolicy"]["maxSurge"] = surge
    if in_place:
        document["spec"]["upgradePolicy"]["osImageUpdate"] = "InPlaceIfPossible"
    return document


def deployment(replicas: int, image: str) -> dict[str, Any]:
    document = common.deployment("deploy", replicas, image, "0s")
    document["spec"]["template"] = template("deploy", image)
    return document


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--operator-log", type=Path, help="keep the operator's log there")
    parser.add_argument(
        "--surge", action="store_true", help="ScaleSet with maxSurge (new instances first)"
    )
    parser.add_argument("--events", type=Path, help="write the namespace's Events there")
    parser.add_argument(
        "--pre-pull",
        choices=("default", "on", "off"),
        default="default",
        help="the ScaleSet's prePullImages (default: unset, which is on in Rolling mode)",
    )
    parser.add_argument(
        "--fresh-versions",
        action="store_true",
        help="round r upgrades to 1.0.r (a version no pod ran), not back and forth "
        "between 1.0.0 and 1.0.2",
    )
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="ScaleSet with osImageUpdate: InPlaceIfPossible (the OS container restarted)",
    )
    args = parser.parse_args()
    args.pre_pull = {"default": None, "on": True, "off": False}[args.pre_pull]
    n = args.instances
    with tempfile.TemporaryDirectory(prefix="galleon-bench-realnode-") as tmp:
        workdir = Path(tmp)
        plane = ControlPlane(
            workdir / "cluster", regions={}, real_nodes={REGION: 1}, real_node_taint=False
        )
        registry = Registry(workdir / "registry", free_port())
        operator: OperatorProcess | None = None
        try:
            plane.start()
            node = next(iter(plane.real_nodes.values()))
            plane.apply_crds(common.ROOT / "crds")
            registry.start()
            node.trust(registry.host)
            # --fresh-versions: round r goes to 1.0.r, a version no pod ran before.
            rounds = (
                [f"1.0.{r}" for r in range(1, args.rounds + 1)] if args.fresh_versions else None
            )
            versions = ("1.0.0", *(rounds or ["1.0.2"]))
            images = {v: build_os_image(workdir / f"os-{v}", v) for v in versions}

            digests = common.push_sources(registry, images)
            operator = OperatorProcess(
                plane.kubeconfig, workdir / "operator.log", verbose=bool(args.operator_log)
            ).start()
            metrics = operator.metrics_url
            common.world(plane.client(), registry, versions)
            client = plane.client()
            image = {v: f"{registry.host}/sources/os@{d}" for v, d in digests.items()}
            print(f"real node {node.name} up in {node.startup_seconds['node']:.1f}s\n")

            common.apply(client, scaleset(n, "1.0.0", args.surge, args.in_place, args.pre_pull))
            common.apply(client, deployment(n, image["1.0.0"]))
            common.wait(lambda: common.scaleset_on(client, "ss", "1.0.0", n), 300, "ScaleSet")
            common.wait(
                lambda: common.deployment_done(client, "deploy", image["1.0.0"], n),
                300,
                "Deployment",
            )
            rows = common.side_by_side(
                plane, metrics, client, n, args.rounds, image, versions=rounds
            )
            deploy = statistics.median(r["seconds"] for r in rows["Deployment"])
            ours = statistics.median(r["seconds"] for r in rows["ScaleSet"])
            print()
            print("| round | Deployment (s) | ScaleSet (s) |")
            print("|---|---|---|")
            for i, (d, s) in enumerate(zip(rows["Deployment"], rows["ScaleSet"], strict=True)):
                print(f"| {i + 1} | {d['seconds']:.1f} | {s['seconds']:.1f} |")
            print()
            kind = "ScaleSet" + (", maxSurge" if args.surge else "")
            kind += ", in place" if args.in_place else ""
            kind += {None: "", True: ", pre-pull on", False: ", pre-pull off"}[args.pre_pull]
            print(f"| {n} instances on a real node, 20% batches | Deployment | {kind} | ratio |")
            print("|---|---|---|---|")
            print(
                f"| rollout time, median of {args.rounds} (s) | {deploy:.1f} | {ours:.1f} "
                f"| {ours / deploy:.2f}x |"
            )
            if args.events:
                write_events(client, args.events)
        finally:
            common.stop_real_node_run(operator, registry, plane, args.operator_log)


def write_events(client: Any, path: Path) -> None:
    """The namespace's Events (kubelet's and the controllers'), oldest first, one per line."""
    from lightkube.resources.core_v1 import Event

    lines = sorted(
        f"{e.lastTimestamp or e.eventTime} {e.involvedObject.name} {e.reason} "
        f"x{e.count or 1}: {e.message}"
        for e in client.list(Event, namespace=NAMESPACE)
    )
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
