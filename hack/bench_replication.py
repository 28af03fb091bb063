#!/usr/bin/env python3
"""Replication throughput: galleon's copier against skopeo, crane and regctl, side
by side in one run.

    python hack/bench_replication.py [--size-mib 512] [--layers 8] [--rounds 2]

Starts 1 source + 6 destination registries (3 regions x 2 replicas) on loopback,
pushes a generated image to the source, then, for each round and each tool:
  (a) one copy into an emptied registry;
  (b) fan-out to the six emptied registries: each peer tool's six copies run in
      parallel (what a user would script), galleon's one fan-out (each source blob
      read once);
and once (c) the same fan-out through the operator: a local control plane, the
operator as a process, three Regions of two registries and one ImageVersion, timed
from apply to Completed, with the operator's peak RSS (skip: --no-operator).
crane runs with `-j 8` (its default is 4), regctl with `--host reg=HOST,tls=disabled`
per registry; both are built by hack/bench-tools.sh into the cache. The galleon side
runs in a child process whose peak RSS (VmHWM) is reported. Figures are medians over
the rounds. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from galleon.oci import RegistryClient, Target, copy_image_to_many
from galleon_testkit.images import build_image, push_image
from galleon_testkit.registry import Registry

REPOSITORY = "bench/os"


PEERS = ("skopeo", "crane", "regctl")


def peer_tools() -> Path:
    """The folder of crane and regctl (hack/bench-tools.sh builds them once)."""
    script = Path(__file__).resolve().parent / "bench-tools.sh"
    done = subprocess.run([str(script)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"could not build the peer tools: {done.stderr.strip()}")
    return Path(done.stdout.strip().splitlines()[-1])


def peer_argv(tool: str, tools: Path, source: str, destination: str) -> list[str]:
    """One copy of `source` to `destination` ("host:port/repo:tag") with a peer tool."""
    if tool == "skopeo":
        return [
            "skopeo",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"docker://{source}",
            f"docker://{destination}",
        ]
    if tool == "crane":
        return [str(tools / "crane"), "copy", "--insecure", "-j", "8", source, destination]
    hosts = [f"reg={ref.split('/', 1)[0]},tls=disabled" for ref in (source, destination)]
    return [
        str(tools / "regctl"),
        *(a for h in hosts for a in ("--host", h)),
        "image",
        "copy",
        source,
        destination,
    ]


def peer_copies(tool: str, tools: Path, source: str, destinations: list[str]) -> float:
    """Seconds for `tool` to copy `source` to every destination, all in parallel."""
    env = {**os.environ, "HOME": tempfile.mkdtemp(prefix="galleon-bench-home-")}
    began = time.monotonic()
    log = Path(env["HOME"]) / "log"
    with log.open("wb") as errors:
        children = [
            subprocess.Popen(
                peer_argv(tool, tools, source, d), env=env, stdout=errors, stderr=errors
            )
            for d in destinations
        ]
        codes = [child.wait(timeout=900) for child in children]
    elapsed = time.monotonic() - began
    said = log.read_text(errors="replace")[-2000:]
    shutil.rmtree(env["HOME"], ignore_errors=True)
    if any(codes):
        raise SystemExit(f"{tool} failed: exit codes {codes}:\n{said}")
    return elapsed


def emptied(registries: list[Registry]) -> list[Registry]:
    """The registries, restarted with empty storage (no blob left to skip)."""
    for registry in registries:
        registry.stop()
        shutil.rmtree(registry.storage)
        registry.start()
    return registries


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


def through_operator(
    work: Path,
    source: Registry,
    regions: list[list[Registry]],
    agents_in: list[Any] | None = None,
) -> dict[str, float]:
    """Case (c): the operator replicates the image to each region's replicas (one
    Region per list of registries, every registry a replica). With `agents_in` (one
    `galleon_testkit.wan.WanRegion` per region), each Region copies by its agent
    (`replication.copiedBy: RegionAgent`), run inside that region's namespace."""
    from lightkube import codecs

    from galleon.kube.resources import ImageDefinition, ImageVersion
    from galleon_testkit.controlplane import ControlPlane
    from galleon_testkit.operator import OperatorProcess
    from galleon_testkit.region_agents import RegionAgentProcess

    root = Path(__file__).resolve().parents[1]
    names = [f"r{i + 1}" for i in range(len(regions))]
    plane = ControlPlane(work / "cluster", regions=dict.fromkeys(names, 1))
    operator = None
    agents: list[RegionAgentProcess] = []
    replication = {"replication": {"copiedBy": "RegionAgent"}} if agents_in else {}
    try:
        plane.start()
        plane.apply_crds(root / "crds")
        client = plane.client()
        client.apply(
            codecs.from_dict(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}
            ),
            force=True,
        )
        api = ("127.0.0.1", int(plane.server.rsplit(":", 1)[1]))
        for name, wan_region in zip(names, agents_in or [], strict=False):
            agent = RegionAgentProcess(
                plane.kubeconfig, api, wan_region, name, work / f"agent-{name}.log",
                namespace="bench",
            )  # fmt: skip
            agents.append(agent)
            agent.start()
        operator = OperatorProcess(
            plane.kubeconfig,
            work / f"operator{'-agents' if agents_in else ''}.log",
            metrics_port=0,
            extra=["--operator-namespace=bench"],
        )
        operator.start()
        documents = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}},
            *(
                {
                    "apiVersion": "galleon.dev/v1alpha1",
                    "kind": "Region",
                    "metadata": {"name": name},
                    "spec": {
                        "registries": [
                            {"name": chr(ord("a") + j), "url": r.url}
                            for j, r in enumerate(registries)
                        ],
                        **replication,
                    },
                }
                for name, registries in zip(names, regions, strict=True)
            ),
            {
                "apiVersion": "galleon.dev/v1alpha1",
                "kind": "Gallery",
                "metadata": {"name": "g", "namespace": "bench"},
                "spec": {"location": names[0]},
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
        # Timed from a running operator: its watches are up once it has reconciled
        # the definition (a fresh API server answers the first watches of new CRDs
        # with 429 "storage is (re)initializing", which kopf retries a second later).
        settle = time.monotonic() + 120
        while not (client.get(ImageDefinition, "os", namespace="bench").get("status") or {}).get(
            "observedGeneration"
        ):
            if time.monotonic() > settle:
                raise SystemExit("the operator did not reconcile the ImageDefinition in 2 min")
            time.sleep(0.1)
        version = {
            "apiVersion": "galleon.dev/v1alpha1",
            "kind": "ImageVersion",
            "metadata": {"name": "os-1-0-0", "namespace": "bench"},
            "spec": {
                "imageDefinitionName": "os",
                "version": "1.0.0",
                "source": {"image": f"{source.host}/{REPOSITORY}:1.0.0", "plainHTTP": True},
                "publishingProfile": {
                    "targetRegions": [
                        {"name": name, "regionalReplicaCount": len(registries)}
                        for name, registries in zip(names, regions, strict=True)
                    ],
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
        agent_peaks = [_peak_rss_mib(a.pid) for a in agents if a.pid is not None]
        return {
            "seconds": seconds,
            "peak_rss_mib": _peak_rss_mib(operator.pid),
            "agent_peak_rss_mib": max(agent_peaks, default=0.0),
        }
    finally:
        if operator is not None:
            operator.stop()
        for agent in agents:
            agent.close()
        plane.stop()


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-operator", action="store_true", help="skip case (c)")
    parser.add_argument(
        "--peers", default=",".join(PEERS), help="peer tools to run (default: all three)"
    )
    args = parser.parse_args()
    peers = tuple(p for p in args.peers.split(",") if p)
    if not peers or any(p not in PEERS for p in peers):
        raise SystemExit(f"--peers takes some of {', '.join(PEERS)}")
    if not shutil.which("skopeo"):
        raise SystemExit("skopeo is missing: apt-get install skopeo (hack/setup.sh does)")
    tools = peer_tools()
    one: dict[str, list[float]] = {t: [] for t in (*peers, "galleon")}
    fan: dict[str, list[float]] = {t: [] for t in (*peers, "galleon")}
    peaks: list[float] = []
    with tempfile.TemporaryDirectory(prefix="galleon-bench-") as folder:
        work = Path(folder)
        registries = [Registry(work / f"r{i}").start() for i in range(8)]
        try:
            source, single, fan_out = registries[0], registries[1], registries[2:8]
            image = build_image(
                work / "image", size=args.size_mib << 20, layers=args.layers, seed=7
            )

            async def push() -> None:
                async with RegistryClient(source.url) as client:
                    await push_image(client, REPOSITORY, image, ["1.0.0"])

            asyncio.run(push())
            mib = image.size / 2**20
            src = f"{source.host}/{REPOSITORY}:1.0.0"
            for round_ in range(args.rounds):
                order = [*peers, "galleon"]
                if round_ % 2:
                    order.reverse()
                for tool in order:
                    emptied([single])
                    if tool == "galleon":
                        result = galleon_in_child(source.host, [single.host])
                        one[tool].append(result["seconds"])
                        peaks.append(result["peak_rss"])
                    else:
                        target = [f"{single.host}/{REPOSITORY}:1.0.0"]
                        one[tool].append(peer_copies(tool, tools, src, target))
                    emptied(fan_out)
                    if tool == "galleon":
                        result = galleon_in_child(source.host, [r.host for r in fan_out])
                        fan[tool].append(result["seconds"])
                        peaks.append(result["peak_rss"])
                    else:
                        targets = [f"{r.host}/{REPOSITORY}:1.0.0" for r in fan_out]
                        fan[tool].append(peer_copies(tool, tools, src, targets))
                    print(
                        f"round {round_ + 1} {tool:<8} one copy {one[tool][-1]:5.1f} s, "
                        f"fan-out {fan[tool][-1]:5.1f} s",
                        flush=True,
                    )
            through = None
            if not args.no_operator:
                emptied(fan_out)
                through = through_operator(work, source, [fan_out[i : i + 2] for i in (0, 2, 4)])
        finally:
            for registry in registries:
                registry.stop()
    median = {t: statistics.median(v) for t, v in one.items()}
    fanned = {t: statistics.median(v) for t, v in fan.items()}
    best_one = min(peers, key=lambda t: median[t])
    best_fan = min(peers, key=lambda t: fanned[t])
    print(
        f"\nimage: {mib:.0f} MiB in {args.layers} layers; median of {args.rounds} rounds; "
        f"machine: {os.cpu_count()} cores, {os.uname().release}, "
        f"Python {sys.version.split()[0]}"
    )
    print("| case | " + " | ".join(peers) + " | galleon | galleon vs the best peer |")
    print("|---|" + "---|" * len(peers) + "---|---|")
    print(
        "| one copy (MiB/s) | "
        + " | ".join(f"{mib / median[t]:.0f}" for t in peers)
        + f" | {mib / median['galleon']:.0f} | "
        f"{median[best_one] / median['galleon']:.2f}x {best_one}'s throughput |"
    )
    print(
        "| fan-out to 3 regions x 2 replicas, copies in parallel (s) | "
        + " | ".join(f"{fanned[t]:.1f}" for t in peers)
        + f" | {fanned['galleon']:.1f} | "
        f"{fanned['galleon'] / fanned[best_fan]:.2f}x {best_fan}'s time |"
    )
    gap = "| " * len(peers)
    print(f"| galleon copier peak RSS (MiB) | {gap}{max(peaks) / 2**20:.0f} | |")
    if through is not None:
        print(
            f"| fan-out through the operator, apply to Completed (s) | {gap}"
            f"{through['seconds']:.1f} | {through['seconds'] / fanned[best_fan]:.2f}x "
            f"{best_fan}'s time |"
        )
        print(f"| operator peak RSS during it (MiB) | {gap}{through['peak_rss_mib']:.0f} | |")


if __name__ == "__main__":
    main()
