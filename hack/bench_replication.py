#!/usr/bin/env python3
"""Replication throughput: galleon's copier against `skopeo copy`, side by side.

    python hack/bench_replication.py [--size-mib 512] [--layers 8]

Starts 1 source + 6 destination registries (3 regions x 2 replicas) on loopback,
pushes a generated image to the source, then in one run:
  (a) one copy: `skopeo copy` to a fresh registry vs galleon's copy to another;
  (b) fan-out to the six: six sequential `skopeo copy` vs one galleon fan-out;
  (c) the same fan-out through the operator: a local control plane, the operator
      as a process, three Regions of two registries and one ImageVersion, timed
      from apply to Completed, with the operator's peak RSS (skip: --no-operator).
The galleon side runs in a child process whose peak RSS (VmHWM) is reported.
Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from galleon.oci import RegistryClient, Target, copy_image_to_many
from galleon_testkit.images import build_image, push_image
from galleon_testkit.registry import Registry

REPOSITORY = "bench/os"


def skopeo(source: str, destination: str) -> float:
    began = time.monotonic()
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"docker://{source}",
            f"docker://{destination}",
        ],
        check=True,
    )
    return time.monotonic() - began


async def galleon_copy(source: str, destinations: list[str]) -> float:
    src = RegistryClient(f"http://{source}")
    targets = [Target(RegistryClient(f"http://{d}"), REPOSITORY, ("1.0.0",)) for d in destinations]
    began = time.monotonic()
    results = await copy_image_to_many(src, REPOSITORY, "1.0.0", targets)
    elapsed = time.monotonic() - began
    for result in results:
        if isinstance(result, Exception):
            raise result
    for target in targets:
        await target.client.close()
    await src.close()
    return elapsed


def child(source: str, destinations: list[str]) -> None:
    elapsed = asyncio.run(galleon_copy(source, destinations))
    peak = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    print(json.dumps({"seconds": elapsed, "peak_rss": peak}))


def galleon_in_child(source: str, destinations: list[str]) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", source, *destinations],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def through_operator(work: Path, source: Registry, targets: list[Registry]) -> dict[str, float]:
    """Case (c): the operator replicates the image to 3 regions x 2 replicas."""
    from lightkube import codecs

    from galleon.kube.resources import ImageVersion
    from galleon_testkit.controlplane import ControlPlane
    from galleon_testkit.operator import OperatorProcess

    root = Path(__file__).resolve().parents[1]
    plane = ControlPlane(work / "cluster", regions={"r1": 1, "r2": 1, "r3": 1})
    operator = None
    try:
        plane.start()
        plane.apply_crds(root / "crds")
        client = plane.client()
        operator = OperatorProcess(plane.kubeconfig, work / "operator.log", metrics_port=0)
        operator.start()
        documents = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}},
            *(
                {
                    "apiVersion": "galleon.dev/v1alpha1",
                    "kind": "Region",
                    "metadata": {"name": f"r{i + 1}"},
                    "spec": {
                        "registries": [
                            {"name": "a", "url": targets[2 * i].url},
                            {"name": "b", "url": targets[2 * i + 1].url},
                        ]
                    },
                }
                for i in range(3)
            ),
            {
                "apiVersion": "galleon.dev/v1alpha1",
                "kind": "Gallery",
                "metadata": {"name": "g", "namespace": "bench"},
                "spec": {"location": "r1"},
            },
            {
                "apiVersion": "galleon.dev/v1alpha1",
                "kind": "ImageDefinition",
                "metadata": {"name": "os", "namespace": "bench"},
                "spec": {
                    "galleryName": "g",
                    "identifier": {"publisher": "bench", "offer": "bench", "sku": "os"},
                    "osType": "Linux",
                },
            },
        ]
        for document in documents:
            client.apply(codecs.from_dict(document), force=True)
        version = {
            "apiVersion": "galleon.dev/v1alpha1",
            "kind": "ImageVersion",
            "metadata": {"name": "os-1-0-0", "namespace": "bench"},
            "spec": {
                "imageDefinitionName": "os",
                "version": "1.0.0",
                "source": {"image": f"{source.host}/{REPOSITORY}:1.0.0", "plainHTTP": True},
                "publishingProfile": {
                    "replicaCount": 2,
                    "targetRegions": [{"name": "r1"}, {"name": "r2"}, {"name": "r3"}],
                },
            },
        }
        began = time.monotonic()
        client.apply(codecs.from_dict(version), force=True)
        while True:
            status = client.get(ImageVersion, "os-1-0-0", namespace="bench").get("status") or {}
            state = (status.get("replicationStatus") or {}).get("aggregatedState")
            if state in ("Completed", "Failed"):
                break
            if time.monotonic() - began > 900:
                raise SystemExit("replication through the operator did not finish in 15 min")
            time.sleep(0.2)
        seconds = time.monotonic() - began
        if state != "Completed":
            raise SystemExit(f"replication through the operator ended {state}: {status}")
        assert operator.pid is not None
        peak = 0.0
        for line in Path(f"/proc/{operator.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
        return {"seconds": seconds, "peak_rss_mib": peak}
    finally:
        if operator is not None:
            operator.stop()
        plane.stop()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--no-operator", action="store_true", help="skip case (c)")
    args = parser.parse_args()
    if not shutil.which("skopeo"):
        raise SystemExit("skopeo is missing: apt-get install skopeo (hack/setup.sh does)")
    with tempfile.TemporaryDirectory(prefix="galleon-bench-") as folder:
        work = Path(folder)
        registries = [Registry(work / f"r{i}").start() for i in range(9)]
        try:
            source, single_skopeo, single_galleon = registries[:3]
            fan_skopeo = registries[3:9]
            image = build_image(
                work / "image", size=args.size_mib << 20, layers=args.layers, seed=7
            )

            async def push() -> None:
                async with RegistryClient(source.url) as client:
                    await push_image(client, REPOSITORY, image, ["1.0.0"])

            asyncio.run(push())
            mib = image.size / 2**20
            src = f"{source.host}/{REPOSITORY}:1.0.0"
            one_skopeo = skopeo(src, f"{single_skopeo.host}/{REPOSITORY}:1.0.0")
            one_galleon = galleon_in_child(source.host, [single_galleon.host])
            # Fan-out: skopeo six times one after the other, into six registries;
            # then galleon into six fresh repositories of the same registries.
            six_skopeo = sum(skopeo(src, f"{r.host}/{REPOSITORY}:1.0.0") for r in fan_skopeo)
            for registry in fan_skopeo:  # the galleon side must not find the blobs there
                registry.stop()
                shutil.rmtree(registry.storage)
                registry.start()
            fan = galleon_in_child(source.host, [r.host for r in fan_skopeo])
            through = None
            if not args.no_operator:
                for registry in fan_skopeo:
                    registry.stop()
                    shutil.rmtree(registry.storage)
                    registry.start()
                through = through_operator(work, source, fan_skopeo)
        finally:
            for registry in registries:
                registry.stop()
    print(
        f"image: {mib:.0f} MiB in {args.layers} layers; machine: {os.cpu_count()} cores, "
        f"{os.uname().release}, Python {sys.version.split()[0]}"
    )
    print("| case | skopeo | galleon | ratio |")
    print("|---|---|---|---|")
    print(
        f"| one copy (MiB/s) | {mib / one_skopeo:.0f} | {mib / one_galleon['seconds']:.0f} "
        f"| {one_skopeo / one_galleon['seconds']:.2f}x throughput |"
    )
    print(
        f"| fan-out to 6 (s) | {six_skopeo:.1f} (sequential) | {fan['seconds']:.1f} "
        f"| {fan['seconds'] / six_skopeo:.2f}x time |"
    )
    peak = max(one_galleon["peak_rss"], fan["peak_rss"]) / 2**20
    print(f"| galleon peak RSS (MiB) | | {peak:.0f} | |")
    if through is not None:
        print(
            f"| fan-out through the operator, apply to Completed (s) | {six_skopeo:.1f} "
            f"(sequential) | {through['seconds']:.1f} "
            f"| {through['seconds'] / six_skopeo:.2f}x time |"
        )
        print(f"| operator peak RSS during it (MiB) | | {through['peak_rss_mib']:.0f} | |")


if __name__ == "__main__":
    main()
