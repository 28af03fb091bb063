#!/usr/bin/env python3
"""Many versions at once: 200 ImageVersions of several tenants published together,
replicated into 3 regions through the operator, against the same bytes through one
copier at full speed.

    python hack/bench_many_versions.py [--versions 200] [--namespaces 4]
                                       [--small-mib 2] [--large-mib 256]
                                       [--concurrency 4] [--keep DIR]
                                       [--profile DIR] [--region-mbit N]

Images: `--versions` small images (`--small-mib` in 2 layers, each its own bytes),
spread evenly over `--namespaces` tenants; tenant t0's first version is a large
image (`--large-mib` in 8 layers) instead, the image others must not wait behind.
Every image is pushed to one source registry; each of 3 Regions has one registry
(all on loopback; with `--region-mbit`, as root, each region's registry is in a
network namespace of its own behind a link shaped to that rate, the source on the
hub with the host, as in hack/bench_wan_replication.py: the bytes, not the shared
cores, are then the bound). Then, into emptied registries:
  (a) galleon's copier (the library, in a child process) copies every image to the
      3 registries, `--concurrency` images at a time: the same bytes at full speed;
  (b) the operator (a local control plane, the operator as a process with its
      default limits) gets all the ImageVersions at once (applied back to back);
      timed from the first apply until every version is Completed.
Per tenant: when its versions completed (from the first apply), and its fair
share: the time its own bytes would take at (a)'s rate if every tenant still
replicating shared the copier equally (`fair_finish`).

Prints Markdown for docs/benchmarks.md. Every process it starts is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_replication as replication
from galleon.oci import RegistryClient, Target, copy_image_to_many
from galleon_testkit.images import TestImage, build_image, push_image
from galleon_testkit.profiles import profile_apiserver, profile_operator, top_frames
from galleon_testkit.registry import Registry
from galleon_testkit.wan import Wan

REGIONS = ("r1", "r2", "r3")


def plan(versions: int, namespaces: int) -> list[tuple[str, int]]:
    """(tenant, index) of every version, interleaved: t0-0, t1-0, ..., t0-1, ...

    >>> plan(5, 2)
    [('t0', 0), ('t1', 0), ('t0', 1), ('t1', 1), ('t0', 2)]
    """
    return [(f"t{i % namespaces}", i // namespaces) for i in range(versions)]


def fair_finish(bytes_by_tenant: dict[str, int], rate: float) -> dict[str, float]:
    """When each tenant would finish if the tenants still replicating shared `rate`
    (bytes/s) equally from time 0 (processor sharing).

    >>> fair_finish({"a": 100, "b": 300}, 10.0)
    {'a': 20.0, 'b': 40.0}
    """
    left: dict[str, float] = dict(bytes_by_tenant)
    now, done = 0.0, {}
    while left:
        share = rate / len(left)
        tenant = min(left, key=lambda t: left[t])
        step = left[tenant] / share
        now += step
        for t in list(left):
            left[t] -= share * step
        for t in [t for t, b in left.items() if b <= 1e-6]:
            done[t] = now
            del left[t]
    return done


def cpu_seconds(pid: int | None) -> float:
    """User and system CPU time a process has used so far."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def kube_requests(plane: Any) -> dict[tuple[str, str], float]:
    """Requests kube-apiserver served so far (all clients, watches excluded), by
    (verb, resource), the resource followed by the code when it is not a 2xx (a 409
    is a write refused on its precondition)."""
    found: dict[tuple[str, str], float] = {}
    for (verb, resource, code), count in plane.requests_served().items():
        key = (verb, resource if code.startswith("2") else f"{resource} {code}")
        found[key] = found.get(key, 0.0) + count
    return found


def source_ref(tenant: str, index: int) -> tuple[str, str]:
    return f"src/{tenant}/os", f"1.0.{index}"


def child(spec_path: str) -> None:
    """Case (a): copy every image (per the spec file) to every destination."""
    spec = json.loads(Path(spec_path).read_text())

    async def copy_all() -> float:
        slots = asyncio.Semaphore(spec["concurrency"])
        source = RegistryClient(f"http://{spec['source']}")
        clients = [RegistryClient(f"http://{d}") for d in spec["destinations"]]

        async def one(repository: str, tag: str) -> None:
            async with slots:
                targets = [Target(c, repository, (tag,)) for c in clients]
                results = await copy_image_to_many(source, repository, tag, targets)
                for result in results:
                    if isinstance(result, Exception):
                        raise result

        began = time.monotonic()
        await asyncio.gather(*(one(r, t) for r, t in spec["images"]))
        elapsed = time.monotonic() - began
        for client in (source, *clients):
            await client.close()
        return elapsed

    elapsed = asyncio.run(copy_all())
    peak = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    print(json.dumps({"seconds": elapsed, "peak_rss": peak, "cpu": time.process_time()}))


def through_operator(
    work: Path,
    source: Registry,
    regions: list[Registry],
    wanted: list[tuple[str, int]],
    flags: list[str],
    profiles: Path | None = None,
) -> dict[str, Any]:
    """Case (b): every version applied at once; each one's completion time (and, with
    `profiles`, a folder, 30 s CPU profiles of the operator and kube-apiserver from
    the first apply: operator.txt, kube-apiserver.pprof)."""
    from lightkube import ALL_NS, codecs

    from galleon.kube.resources import ImageDefinition, ImageVersion
    from galleon_testkit.controlplane import ControlPlane
    from galleon_testkit.operator import OperatorProcess

    root = Path(__file__).resolve().parents[1]
    plane = ControlPlane(
        work / "cluster", regions=dict.fromkeys(REGIONS, 1), profiling=profiles is not None
    )
    operator = None
    try:
        plane.start()
        plane.apply_crds(root / "crds")
        client = plane.client()
        operator = OperatorProcess(
            plane.kubeconfig, work / "operator.log", metrics_port=0, extra=flags
        )
        operator.start()
        tenants = sorted({t for t, _ in wanted})
        documents: list[dict[str, Any]] = [
            {
                "apiVersion": "galleon.dev/v1alpha1",
                "kind": "Region",
                "metadata": {"name": name},
                "spec": {"registries": [{"name": "a", "url": registry.url}]},
            }
            for name, registry in zip(REGIONS, regions, strict=True)
        ]
        for tenant in tenants:
            documents += [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": tenant}},
                {
                    "apiVersion": "galleon.dev/v1alpha1",
                    "kind": "Gallery",
                    "metadata": {"name": "g", "namespace": tenant},
                    "spec": {"location": REGIONS[0]},
                },
                {
                    "apiVersion": "galleon.dev/v1alpha1",
                    "kind": "ImageDefinition",
                    "metadata": {"name": "os", "namespace": tenant},
                    "spec": {
                        "galleryName": "g",
                        "identifier": {"publisher": tenant, "offer": "bench", "sku": "os"},
                        "osType": "Linux",
                    },
                },
            ]
        for document in documents:
            client.apply(codecs.from_dict(document), force=True)
        settle = time.monotonic() + 120
        for tenant in tenants:  # timed from a running operator (its watches are up)
            while not (client.get(ImageDefinition, "os", namespace=tenant).get("status") or {}).get(
                "observedGeneration"
            ):
                if time.monotonic() > settle:
                    raise SystemExit("the operator did not reconcile the definitions in 2 min")
                time.sleep(0.1)

        def apply_version(item: tuple[str, int]) -> None:
            tenant, index = item
            repository, tag = source_ref(tenant, index)
            client.apply(
                codecs.from_dict(
                    {
                        "apiVersion": "galleon.dev/v1alpha1",
                        "kind": "ImageVersion",
                        "metadata": {"name": f"os-1-0-{index}", "namespace": tenant},
                        "spec": {
                            "imageDefinitionName": "os",
                            "version": tag,
                            "source": {
                                "image": f"{source.host}/{repository}:{tag}",
                                "plainHTTP": True,
                            },
                            "publishingProfile": {
                                "targetRegions": [{"name": name} for name in REGIONS]
                            },
                        },
                    }
                ),
                force=True,
            )

        # Applied as a GitOps tool or `kubectl apply -f DIR` would, back to back (8 at
        # a time), while the completions are watched.
        pool = concurrent.futures.ThreadPoolExecutor(8)
        pids = {
            "operator": operator.pid,
            "kube-apiserver": plane.pid("kube-apiserver"),
            "etcd": plane.pid("etcd"),
            "registries": None,
        }
        registry_pids = [r.pid for r in (source, *regions)]
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        cpu_before["registries"] = sum(cpu_seconds(p) for p in registry_pids)
        requests_before = kube_requests(plane)
        assert operator.pid is not None
        spy = profile_operator(operator.pid, profiles and profiles / "operator.txt")
        pprof = profile_apiserver(plane, profiles and profiles / "kube-apiserver.pprof")
        began = time.monotonic()
        applying = [pool.submit(apply_version, item) for item in wanted]
        pool.shutdown(wait=False)
        finished: dict[tuple[str, str], float] = {}
        failed: dict[tuple[str, str], str] = {}
        all_seen = threading.Event()

        def watch_completions() -> None:
            """Each version's completion time, from a watch (a LIST every moment would
            load the API server the benchmark measures)."""
            for _, version in client.watch(ImageVersion, namespace=ALL_NS):
                key = (version.metadata.namespace, version.metadata.name)
                state = ((version.get("status") or {}).get("replicationStatus") or {}).get(
                    "aggregatedState"
                )
                if key in finished or key in failed:
                    continue
                if state == "Completed":
                    finished[key] = time.monotonic() - began
                elif state == "Failed":
                    failed[key] = json.dumps(version.get("status"))[:500]
                if len(finished) + len(failed) >= len(wanted):
                    all_seen.set()
                    return

        watcher = threading.Thread(target=watch_completions, daemon=True)
        watcher.start()
        for future in applying:
            future.result()  # an apply that failed fails the benchmark
        applied = time.monotonic() - began
        if not all_seen.wait(timeout=1800):
            raise SystemExit(f"not all Completed in 30 min: {len(finished)} of {len(wanted)}")
        if failed:
            raise SystemExit(f"{len(failed)} versions Failed, e.g. {next(iter(failed.values()))}")
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        requests = kube_requests(plane)
        requests = {k: v - requests_before.get(k, 0.0) for k, v in requests.items()}
        cpu["registries"] = sum(cpu_seconds(p) for p in registry_pids) - cpu_before["registries"]
        for profile in (spy, pprof):
            if profile is not None:
                profile.join()
        return {
            "seconds": max(finished.values()),
            "applied": applied,
            "finished": finished,
            "peak_rss_mib": replication._peak_rss_mib(operator.pid),
            "cpu": cpu,
            "requests": requests,
        }
    finally:
        if operator is not None:
            operator.stop()
        plane.stop()


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument("--namespaces", type=int, default=4)
    parser.add_argument("--small-mib", type=float, default=2)
    parser.add_argument("--large-mib", type=float, default=256)
    parser.add_argument("--concurrency", type=int, default=4, help="case (a): images at once")
    parser.add_argument("--keep", type=Path, help="work in this (new) folder and keep it")
    parser.add_argument(
        "--operator-flag", action="append", default=[], help="passed to the operator"
    )
    parser.add_argument(
        "--region-mbit",
        type=float,
        help="each region's registry behind a link of this many Mbit/s (root; "
        "galleon_testkit.wan), the source on the hub",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="a folder: 30 s CPU profiles from the first apply of case (b), the operator's "
        "(operator.txt, collapsed stacks; its top functions are printed) and "
        "kube-apiserver's (kube-apiserver.pprof: go tool pprof -top FILE)",
    )
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    wanted = plan(args.versions, args.namespaces)
    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True)
            work = args.keep
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="galleon-many-")))
        if args.region_mbit:
            wan = Wan(work / "wan").start()
            stack.callback(wan.stop)
            source = Registry(work / "source", address=wan.hub_address, netns=wan.hub)
            links = [wan.region(name, mbit=args.region_mbit) for name in REGIONS]
            regions = [
                Registry(work / name, address=link.address, netns=link.netns)
                for name, link in zip(REGIONS, links, strict=True)
            ]
        else:
            source = Registry(work / "source")
            regions = [Registry(work / name) for name in REGIONS]
        for registry in (source, *regions):
            registry.start()
            stack.callback(registry.stop)
        images: dict[tuple[str, int], TestImage] = {}
        for n, (tenant, index) in enumerate(wanted):
            large = tenant == "t0" and index == 0
            images[(tenant, index)] = build_image(
                work / "images" / f"{tenant}-{index}",
                size=int((args.large_mib if large else args.small_mib) * 2**20),
                layers=8 if large else 2,
                seed=1000 + n,
            )

        async def push_all() -> None:
            async with RegistryClient(source.url) as client:
                for (tenant, index), image in images.items():
                    repository, tag = source_ref(tenant, index)
                    await push_image(client, repository, image, [tag])

        asyncio.run(push_all())
        total = sum(i.size for i in images.values())
        by_tenant: dict[str, int] = {}
        for (tenant, _), image in images.items():
            by_tenant[tenant] = by_tenant.get(tenant, 0) + image.size * len(REGIONS)
        print(
            f"{len(wanted)} versions of {args.namespaces} tenants, {total / 2**20:.0f} MiB of "
            f"images ({args.small_mib:g} MiB each, t0's first {args.large_mib:g} MiB), "
            f"into {len(REGIONS)} regions"
            + (
                f" behind {args.region_mbit:g} Mbit/s links (each region's bytes once over "
                f"its link: {total * 8 / (args.region_mbit * 1e6):.1f} s)"
                if args.region_mbit
                else " on loopback"
            ),
            flush=True,
        )
        spec = work / "copy.json"
        spec.write_text(
            json.dumps(
                {
                    "source": source.host,
                    "destinations": [r.host for r in regions],
                    "concurrency": args.concurrency,
                    "images": [source_ref(t, i) for t, i in wanted],
                }
            )
        )
        registry_cpu = sum(cpu_seconds(r.pid) for r in (source, *regions))
        copied = json.loads(
            subprocess.run(
                [sys.executable, __file__, "--child", str(spec)],
                check=True,
                capture_output=True,
                text=True,
                timeout=1800,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        copied["registries_cpu"] = (
            sum(cpu_seconds(r.pid) for r in (source, *regions)) - registry_cpu
        )
        print(f"one copier, {args.concurrency} at a time: {copied['seconds']:.1f} s", flush=True)
        replication.emptied(regions)
        through = through_operator(work, source, regions, wanted, args.operator_flag, args.profile)
        print(f"through the operator: {through['seconds']:.1f} s", flush=True)
    rate = total * len(REGIONS) / copied["seconds"]
    fair = fair_finish(by_tenant, rate)
    ratio = through["seconds"] / copied["seconds"]
    print(
        f"\n{len(wanted)} ImageVersions of {args.namespaces} tenants into {len(REGIONS)} regions; "
        f"machine: {os.cpu_count()} cores, {os.uname().release}, Python {sys.version.split()[0]}"
    )
    print("| case | seconds | ratio |")
    print("|---|---|---|")
    print(
        f"| galleon's copier, every image to the 3 registries, {args.concurrency} at a time | "
        f"{copied['seconds']:.1f} | 1.00x |"
    )
    print(
        f"| through the operator, first apply to all Completed | {through['seconds']:.1f} | "
        f"{ratio:.2f}x (goal ≤ 1.2x) |"
    )
    print(f"| (applying the {len(wanted)} versions took) | {through['applied']:.1f} | |")
    print(
        f"| peak RSS: operator / copier (MiB) | {through['peak_rss_mib']:.0f} / "
        f"{copied['peak_rss'] / 2**20:.0f} | |"
    )
    cpu = through["cpu"]
    print(
        f"| CPU seconds: copier {copied['cpu']:.1f}, its registries "
        f"{copied['registries_cpu']:.1f}; operator {cpu['operator']:.1f}, kube-apiserver "
        f"{cpu['kube-apiserver']:.1f}, etcd {cpu['etcd']:.1f}, registries "
        f"{cpu['registries']:.1f} | | |"
    )
    per = sorted(through["requests"].items(), key=lambda kv: -kv[1])
    total_requests = sum(through["requests"].values()) / len(wanted)
    print(
        f"| API requests per version, all clients (the script watches) | "
        f"{total_requests:.1f} | "
        + ", ".join(f"{v} {r} {n / len(wanted):.1f}" for (v, r), n in per if n >= len(wanted) / 10)
        + " |"
    )
    print(
        "\n| tenant | versions | MiB to write | first / median / last Completed (s) "
        "| fair share (s) | last vs fair |"
    )
    print("|---|---|---|---|---|---|")
    for tenant in sorted(by_tenant):
        times = sorted(s for (ns, _), s in through["finished"].items() if ns == tenant)
        print(
            f"| {tenant} | {len(times)} | {by_tenant[tenant] / 2**20:.0f} | "
            f"{times[0]:.1f} / {statistics.median(times):.1f} / {times[-1]:.1f} | "
            f"{fair[tenant]:.1f} | {times[-1] / fair[tenant]:.2f}x |"
        )
    spied = args.profile and args.profile / "operator.txt"
    if spied and spied.exists():
        print(f"\nThe operator's first 30 s from the first apply ({spied}):\n")
        print(top_frames(spied))


if __name__ == "__main__":
    main()
