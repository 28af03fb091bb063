#!/usr/bin/env python3
"""Replication across a WAN: regions behind bandwidth-shaped links, galleon against
the physical limit and against crane and regctl, side by side in one run.

    python hack/bench_wan_replication.py [--regions 3] [--replicas 2] [--mbit 200]
                                         [--size-mib 256] [--layers 8] [--rounds 1]
                                         [--peers regctl,crane] [--no-operator]
                                         [--no-agents]

Each region is a network namespace behind a link shaped to `--mbit` Mbit/s each way
(`galleon_testkit.wan`: tbf on both ends of a veth); inside a region its `--replicas`
registries share the namespace's fast local network. The source registry sits in the
hub, with the host (the operator, the peer tools), on an unshaped link. A generated
image is pushed to the source, then for each round, into emptied registries:
  (a) each peer tool copies the source to every replica, all copies in parallel
      (one process per replica, what a user would script);
  (b) galleon's copier (the library, in a child process) fans out from the host;
  (c) once, through the operator: a local control plane, the operator as a process,
      one Region per region namespace and one ImageVersion, timed from apply to
      Completed (skip: --no-operator);
  (d) the same with every Region copied by its region agent
      (`replication.copiedBy: RegionAgent`), one `galleon-region-agent` in each
      region's namespace: it pulls the image once over the link and writes the
      replicas inside the region (skip: --no-agents).
The physical limit is the image's bytes over one region link (regions in parallel):
what a copy that crosses each link once would take. Cases (a) to (c) run from the
host, so each region's link carries the image once per replica; (d) crosses it once.

Needs root (network namespaces). Prints Markdown for docs/benchmarks.md. Every
namespace, link and process it starts is gone at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_replication as replication
from galleon.oci import RegistryClient
from galleon_testkit.images import build_image, push_image
from galleon_testkit.registry import Registry
from galleon_testkit.wan import Wan

REPOSITORY = replication.REPOSITORY
PEERS = ("crane", "regctl")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--regions", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=2, help="registries per region")
    parser.add_argument("--mbit", type=float, default=200.0, help="each region link's rate")
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--no-operator", action="store_true", help="skip case (c)")
    parser.add_argument("--no-agents", action="store_true", help="skip case (d)")
    parser.add_argument("--keep", type=Path, help="work in this (new) folder and keep it: the logs")
    args = parser.parse_args()
    peers = tuple(p for p in args.peers.split(",") if p)
    if any(p not in PEERS for p in peers):
        raise SystemExit(f"--peers takes some of {', '.join(PEERS)}")
    tools = replication.peer_tools() if peers else Path()
    times: dict[str, list[float]] = {t: [] for t in (*peers, "galleon")}
    peaks: list[float] = []
    through = agents = None
    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True)
            work = args.keep
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="galleon-wan-")))
        wan = Wan(work / "wan").start()
        registries: list[Registry] = []
        try:
            source = Registry(work / "source", address=wan.hub_address, netns=wan.hub)
            registries.append(source)
            regions: list[list[Registry]] = []
            wan_regions = []
            for i in range(args.regions):
                region = wan.region(f"r{i + 1}", mbit=args.mbit, addresses=args.replicas)
                wan_regions.append(region)
                regions.append(
                    [
                        Registry(
                            work / f"r{i + 1}-{j}", address=region.addresses[j], netns=region.netns
                        )
                        for j in range(args.replicas)
                    ]
                )
            replicas = [r for region in regions for r in region]
            registries.extend(replicas)
            for registry in registries:
                registry.start()
            image = build_image(
                work / "image", size=args.size_mib << 20, layers=args.layers, seed=11
            )

            async def push() -> None:
                async with RegistryClient(source.url) as client:
                    await push_image(client, REPOSITORY, image, ["1.0.0"])

            asyncio.run(push())
            src = f"{source.host}/{REPOSITORY}:1.0.0"
            limit = image.size * 8 / (args.mbit * 1e6)
            print(
                f"{args.regions} regions x {args.replicas} replicas behind {args.mbit:g} Mbit/s "
                f"links; image {image.size / 2**20:.0f} MiB in {args.layers} layers; "
                f"physical limit {limit:.1f} s",
                flush=True,
            )
            for round_ in range(args.rounds):
                order = [*peers, "galleon"]
                if round_ % 2:
                    order.reverse()
                for tool in order:
                    replication.emptied(replicas)
                    if tool == "galleon":
                        result = replication.galleon_in_child(
                            source.host, [r.host for r in replicas]
                        )
                        times[tool].append(result["seconds"])
                        peaks.append(result["peak_rss"])
                    else:
                        targets = [f"{r.host}/{REPOSITORY}:1.0.0" for r in replicas]
                        times[tool].append(replication.peer_copies(tool, tools, src, targets))
                    print(f"round {round_ + 1} {tool:<8} {times[tool][-1]:6.1f} s", flush=True)
            if not args.no_operator:
                replication.emptied(replicas)
                through = replication.through_operator(work, source, regions)
                print(f"through the operator {through['seconds']:6.1f} s", flush=True)
            if not args.no_agents:
                replication.emptied(replicas)
                agents = replication.through_operator(
                    work / "agents", source, regions, agents_in=wan_regions
                )
                print(f"through region agents {agents['seconds']:6.1f} s", flush=True)
        finally:
            for registry in registries:
                registry.stop()
            wan.stop()
    median = {t: statistics.median(v) for t, v in times.items()}
    best = min(peers, key=lambda t: median[t]) if peers else "galleon"
    print(
        f"\n{args.regions} regions x {args.replicas} replicas, {args.mbit:g} Mbit/s per region "
        f"link, {image.size / 2**20:.0f} MiB image; median of {args.rounds} rounds; machine: "
        f"{os.cpu_count()} cores, {os.uname().release}, Python {sys.version.split()[0]}"
    )
    print("| case | seconds | vs the physical limit | vs the best peer |")
    print("|---|---|---|---|")
    print(f"| physical limit (the image once over one region link) | {limit:.1f} | 1.00x | |")
    for tool in peers:
        print(
            f"| {tool}, one copy per replica in parallel | {median[tool]:.1f} | "
            f"{median[tool] / limit:.2f}x | {median[tool] / median[best]:.2f}x |"
        )
    print(
        f"| galleon's copier, fan-out from the host | {median['galleon']:.1f} | "
        f"{median['galleon'] / limit:.2f}x | {median['galleon'] / median[best]:.2f}x |"
    )
    if through is not None:
        seconds = through["seconds"]
        print(
            f"| galleon through the operator, apply to Completed | {seconds:.1f} | "
            f"{seconds / limit:.2f}x (goal ≤ 1.15x) | {seconds / median[best]:.2f}x (goal ≤ 0.6x) |"
        )
        print(f"| operator peak RSS (MiB) | {through['peak_rss_mib']:.0f} | | |")
    if agents is not None:
        seconds = agents["seconds"]
        print(
            f"| galleon through the operator with region agents, apply to Completed | "
            f"{seconds:.1f} | {seconds / limit:.2f}x (goal ≤ 1.15x) | "
            f"{seconds / median[best]:.2f}x (goal ≤ 0.6x) |"
        )
        print(
            f"| operator / largest agent peak RSS with agents (MiB) | "
            f"{agents['peak_rss_mib']:.0f} / {agents['agent_peak_rss_mib']:.0f} | | |"
        )
    print(f"| galleon copier peak RSS (MiB) | {max(peaks) / 2**20:.0f} | | |")


if __name__ == "__main__":
    main()
