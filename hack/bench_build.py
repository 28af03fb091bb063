#!/usr/bin/env python3
"""The image builder against `crane append`: one new 64 MiB layer on a 512 MiB base.

    python hack/bench_build.py [--rounds 5] [--base-mib 512] [--base-layers 8] [--layer-mib 64]

Starts one loopback distribution registry (its access log on), pushes a generated
base image (8 layers of 64 MiB of seeded random bytes, `galleon_testkit.images`) to
`bench/base` once, and makes the new content once, before any timing: `--layer-mib`
of seeded random bytes (incompressible) as one file, `layer.bin`. Each tool adds it
as one layer under /opt/bench:
  - galleon: `galleon.oci.build.build_image` with an `Archive("/opt/bench", tar)`
    step (the tar holds the one file), in a child process whose peak RSS (VmHWM) is
    reported; timed around the `build_image` call (the long-lived operator neither
    starts Python nor reads a file to build); once with its default gzip (pinned
    deflate level 6) and once with `compression="none"`;
  - crane (`crane append --insecure -b BASE@DIGEST -f layer.tar -t NEW:TAG`, built by
    hack/bench-tools.sh): layer.tar is galleon's own uncompressed tar of that step,
    so both layers have the same diff_id (checked); crane gzips it itself (level 1,
    `gzip.BestSpeed`, its tarball package's default) and is timed as a process.
Each tool builds into (a) the base's repository: a fresh repository per round with
the base mounted into it beforehand, untimed (the registry then holds it as it holds
the base's own repository, and the new layer of the round before is not there to
skip), base layers to be skipped; and (b) a fresh, empty repository of the same
registry, base layers to be mounted from `bench/base`. The order of the tools
alternates between rounds. What moved is read from the registry's access log (blob
uploads completed, mounts, blob reads, HEADs), sizes by HEAD; galleon's
BuildResult byte counts are printed beside it. Figures are medians over the rounds;
then, once, where galleon's time goes (tar, gzip, sha256, upload). Prints Markdown
tables for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from galleon.core import layers
from galleon.core.layers import Archive, Entry
from galleon.oci import RegistryClient
from galleon.oci.build import build_image
from galleon.oci.client import Manifest
from galleon_testkit.images import build_image as generated
from galleon_testkit.images import push_image
from galleon_testkit.registry import AccessLogEntry, Registry

BASE = "bench/base"
DESTINATION = "/opt/bench"
TAG = "built"
SEED = 64
CASES = ("crane", "galleon", "galleon-none")
"""crane; galleon with its default gzip; galleon with compression="none"."""
WHERES = ("same", "other")
"""same: the repository holding the base (layers skipped); other: an empty one (mounted)."""
MIB = 2**20


def peer_tools() -> Path:
    """The folder of crane and regctl (hack/bench-tools.sh builds them once)."""
    script = Path(__file__).resolve().parent / "bench-tools.sh"
    done = subprocess.run([str(script)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"could not build the peer tools: {done.stderr.strip()}")
    return Path(done.stdout.strip().splitlines()[-1])


# -- the galleon side, in a child process ------------------------------------------------


async def galleon_build(job: dict[str, str]) -> dict[str, object]:
    data = Path(job["archive"]).read_bytes()
    step = Archive(DESTINATION, data)
    async with RegistryClient(job["url"]) as client:
        began = time.monotonic()
        result = await build_image(
            client,
            job["source"],
            job["digest"],
            [step],
            client,
            job["repository"],
            TAG,
            compression="none" if job["compression"] == "none" else "gzip",
        )
        seconds = time.monotonic() - began
    return {
        "seconds": seconds,
        "step_seconds": result.steps[0].seconds,
        "uploaded": result.bytes_uploaded,
        "mounted": result.bytes_mounted,
        "skipped": result.bytes_skipped,
        "copied": result.bytes_copied,
        "layer_size": result.steps[0].layers[0].size,
        "digest": result.digest,
    }


def child(job: dict[str, str]) -> None:
    figures = asyncio.run(galleon_build(job))
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            figures["peak_rss"] = int(line.split()[1]) * 1024
    print(json.dumps(figures))


def galleon_in_child(job: dict[str, str]) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(job)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def crane_append(crane: Path, base: str, layer: Path, target: str) -> float:
    """Seconds of one `crane append` (a process, as a user runs it)."""
    home = tempfile.mkdtemp(prefix="galleon-bench-home-")
    argv = [str(crane), "append", "--insecure", "-b", base, "-f", str(layer), "-t", target]
    began = time.monotonic()
    done = subprocess.run(
        argv, env={**os.environ, "HOME": home}, capture_output=True, text=True, check=False
    )
    elapsed = time.monotonic() - began
    shutil.rmtree(home, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"crane append failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed


# -- what the registry saw -----------------------------------------------------------


@dataclass
class Seen:
    """Blob traffic of one build, from the registry's access log."""

    uploaded: dict[str, str] = field(default_factory=dict)
    """digest → repository, for each blob upload the registry completed (201)."""
    mounted: dict[str, str] = field(default_factory=dict)
    read: dict[str, str] = field(default_factory=dict)
    """Blobs GET from the registry (the base's config; never a layer)."""
    heads: int = 0
    requests: int = 0


def seen(entries: list[AccessLogEntry]) -> Seen:
    view = Seen(requests=len(entries))
    for entry in entries:
        url = urlsplit(entry.path)
        query = parse_qs(url.query)
        path = url.path
        if not path.startswith("/v2/") or "/blobs/" not in path:
            continue
        repository = path[len("/v2/") : path.index("/blobs/")]
        if entry.method == "HEAD":
            view.heads += 1
        elif entry.method == "GET" and entry.status == 200:
            view.read[path.rsplit("/", 1)[1]] = repository
        elif entry.method == "POST" and entry.status == 201 and "mount" in query:
            view.mounted[query["mount"][0]] = repository
        elif entry.method in ("PUT", "POST") and entry.status == 201 and "digest" in query:
            view.uploaded[query["digest"][0]] = repository
    return view


def blob_size(registry: Registry, repository: str, digest: str) -> int:
    request = urllib.request.Request(
        f"{registry.url}/v2/{repository}/blobs/{digest}", method="HEAD"
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as answer:
        return int(answer.headers["Content-Length"])


def seen_bytes(registry: Registry, blobs: dict[str, str]) -> int:
    return sum(blob_size(registry, repository, digest) for digest, repository in blobs.items())


def manifest_of(registry: Registry, repository: str, reference: str) -> dict[str, object]:
    accept = ", ".join(
        (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
    )
    request = urllib.request.Request(
        f"{registry.url}/v2/{repository}/manifests/{reference}", headers={"Accept": accept}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as answer:
        return dict(json.loads(answer.read()))


def diff_ids_of(registry: Registry, repository: str, reference: str) -> list[str]:
    manifest = manifest_of(registry, repository, reference)
    config = manifest["config"]
    assert isinstance(config, dict)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    url = f"{registry.url}/v2/{repository}/blobs/{config['digest']}"
    with opener.open(url, timeout=10) as answer:
        return list(json.loads(answer.read())["rootfs"]["diff_ids"])


async def mount_base(
    client: RegistryClient, repository: str, blobs: list[str], base: Manifest
) -> None:
    """`repository` made to hold the base as `bench/base` does (mounts, then its manifest)."""
    for digest in blobs:
        if not await client.mount_blob(repository, digest, BASE):
            raise SystemExit(f"the registry did not mount {digest} into {repository}")
    await client.put_manifest(repository, base.digest, base)


# -- where galleon's time goes -------------------------------------------------------


def timed(work: Callable[[], object]) -> float:
    began = time.monotonic()
    work()
    return time.monotonic() - began


def breakdown(registry: Registry, step: Archive) -> dict[str, float]:
    """Seconds of each part of building and pushing the new layer, each alone, once."""
    figures: dict[str, float] = {}
    layer_tar = layers.archive_layer(step, compression="none").data
    gzipped = layers.gzip_bytes(layer_tar)
    figures["archive_layer (gzip): read the tar, rewrite it, gzip, 2 sha256"] = timed(
        lambda: layers.archive_layer(step, compression="gzip")
    )
    figures["archive_layer (none): read the tar, rewrite it, 1 sha256"] = timed(
        lambda: layers.archive_layer(step, compression="none")
    )
    figures["  of which the tar rewrite (tar_bytes)"] = timed(
        lambda: layers.tar_bytes([Entry("opt/bench/layer.bin", "file", 0o644, content=layer_tar)])
    )
    figures["  gzip_bytes at level 6 (galleon's)"] = timed(lambda: layers.gzip_bytes(layer_tar))
    figures["  deflate at level 1 (what crane's BestSpeed is), zlib"] = timed(
        lambda: layers.gzip_bytes(layer_tar, level=1)
    )
    figures["  one sha256"] = timed(lambda: layers.sha256(gzipped))
    figures["  one crc32"] = timed(lambda: zlib.crc32(layer_tar))

    async def upload(repository: str, data: bytes) -> float:
        async with RegistryClient(registry.url) as client:
            began = time.monotonic()
            await client.upload_blob(repository, layers.sha256(data), len(data), data)
            return time.monotonic() - began

    figures["upload of the gzip layer alone (POST + one PUT, galleon's client)"] = asyncio.run(
        upload("bench/breakdown-1", gzipped)
    )
    return figures


# -- the run -------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--base-mib", type=int, default=512)
    parser.add_argument("--base-layers", type=int, default=8)
    parser.add_argument("--layer-mib", type=int, default=64)
    parser.add_argument("--no-breakdown", action="store_true", help="skip the profile part")
    args = parser.parse_args()
    crane = peer_tools() / "crane"
    seconds: dict[tuple[str, str], list[float]] = {(c, w): [] for c in CASES for w in WHERES}
    views: dict[tuple[str, str], list[dict[str, float]]] = {k: [] for k in seconds}
    builds: dict[tuple[str, str], list[dict[str, float]]] = {k: [] for k in seconds}
    with tempfile.TemporaryDirectory(prefix="galleon-bench-") as folder:
        work = Path(folder)
        registry = Registry(work / "registry", access_log=True).start()
        try:
            image = generated(
                work / "base", size=args.base_mib * MIB, layers=args.base_layers, seed=SEED
            )

            async def push() -> None:
                async with RegistryClient(registry.url) as client:
                    await push_image(client, BASE, image, ["1.0.0"])

            asyncio.run(push())
            base_digest = image.manifest.digest
            base_blobs = [blob.digest for blob in image.blobs]
            content = random.Random(SEED).randbytes(args.layer_mib * MIB)
            archive = layers.tar_bytes([Entry("layer.bin", "file", 0o644, content=content)])
            step = Archive(DESTINATION, archive)
            (work / "archive.tar").write_bytes(archive)
            layer_tar = layers.archive_layer(step, compression="none")
            (work / "layer.tar").write_bytes(layer_tar.data)
            del content, archive
            for round_ in range(1, args.rounds + 1):
                order = [(c, w) for c in CASES for w in WHERES]
                if round_ % 2 == 0:
                    order.reverse()
                for case, where in order:
                    repository = f"bench/r{round_}-{case}-{where}"
                    if where == "same":

                        async def prepare(repository: str = repository) -> None:
                            async with RegistryClient(registry.url) as client:
                                await mount_base(client, repository, base_blobs, image.manifest)

                        asyncio.run(prepare())
                    source = repository if where == "same" else BASE
                    time.sleep(0.2)  # the preparation's log lines are written
                    before = len(registry.requests())
                    if case == "crane":
                        took = crane_append(
                            crane,
                            f"{registry.host}/{source}@{base_digest}",
                            work / "layer.tar",
                            f"{registry.host}/{repository}:{TAG}",
                        )
                        built: dict[str, float] = {}
                    else:
                        built = galleon_in_child(
                            {
                                "url": registry.url,
                                "source": source,
                                "digest": base_digest,
                                "repository": repository,
                                "compression": "none" if case == "galleon-none" else "gzip",
                                "archive": str(work / "archive.tar"),
                            }
                        )
                        took = built["seconds"]
                    time.sleep(0.2)
                    view = seen(registry.requests()[before:])
                    ids = diff_ids_of(registry, repository, TAG)
                    if ids[-1] != layer_tar.diff_id or len(ids) != args.base_layers + 1:
                        raise SystemExit(f"{case} built {repository} with diff_ids {ids}")
                    figures: dict[str, float] = {
                        "uploaded": seen_bytes(registry, view.uploaded),
                        "uploads": len(view.uploaded),
                        "mounted": seen_bytes(registry, view.mounted),
                        "mounts": len(view.mounted),
                        "read": seen_bytes(registry, view.read),
                        "reads": len(view.read),
                        "heads": view.heads,
                        "requests": view.requests,
                    }
                    seconds[case, where].append(took)
                    views[case, where].append(figures)
                    builds[case, where].append(built)
                    print(
                        f"round {round_} {case:<12} {where:<5} {took:5.2f} s; registry: "
                        f"{figures['uploads']} uploaded ({figures['uploaded'] / MIB:.2f} MiB), "
                        f"{figures['mounts']} mounted ({figures['mounted'] / MIB:.1f} MiB), "
                        f"{figures['reads']} read ({figures['read']:.0f} B), "
                        f"{figures['heads']} HEAD, {figures['requests']} requests"
                        + (
                            f"; galleon: uploaded {built['uploaded'] / MIB:.2f} MiB, mounted "
                            f"{built['mounted'] / MIB:.1f}, skipped {built['skipped'] / MIB:.1f}, "
                            f"copied {built['copied'] / MIB:.1f}, step {built['step_seconds']:.2f}"
                            f" s, peak RSS {built['peak_rss'] / MIB:.0f} MiB"
                            if built
                            else ""
                        ),
                        flush=True,
                    )
            parts = {} if args.no_breakdown else breakdown(registry, step)
        finally:
            registry.stop()
    median = {k: statistics.median(v) for k, v in seconds.items()}

    def typical(key: tuple[str, str], name: str) -> float:
        return statistics.median(v[name] for v in views[key])

    print(
        f"\nbase: {image.size / MIB:.0f} MiB in {args.base_layers} layers; new layer: "
        f"{args.layer_mib} MiB of random bytes; median of {args.rounds} rounds; machine: "
        f"{os.cpu_count()} cores, {os.uname().release}, Python {sys.version.split()[0]}, "
        f"zlib {zlib.ZLIB_RUNTIME_VERSION}"
    )
    print("\n| round | " + " | ".join(f"{c} {w}" for c in CASES for w in WHERES) + " |")
    print("|---|" + "---|" * (len(CASES) * len(WHERES)))
    for index in range(args.rounds):
        print(
            f"| {index + 1} | "
            + " | ".join(f"{seconds[c, w][index]:.2f}" for c in CASES for w in WHERES)
            + " |"
        )
    print(
        "\n| new layer onto the base | crane append (s) | galleon, gzip (s) | ratio "
        "| galleon, compression none (s) | ratio |"
    )
    print("|---|---|---|---|---|---|")
    for where, said in (("same", "into the base's repository"), ("other", "into another repo")):
        crane_s = median["crane", where]
        print(
            f"| {said} | {crane_s:.2f} | {median['galleon', where]:.2f} | "
            f"{median['galleon', where] / crane_s:.2f}x | {median['galleon-none', where]:.2f} | "
            f"{median['galleon-none', where] / crane_s:.2f}x |"
        )
    print(
        "\n| registry's view, median per build | uploads | uploaded (MiB) | mounts "
        "| mounted (MiB) | blobs read (bytes) | HEADs | requests |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for case in CASES:
        for where in WHERES:
            key = (case, where)
            print(
                f"| {case} {where} | {typical(key, 'uploads'):.0f} | "
                f"{typical(key, 'uploaded') / MIB:.3f} | {typical(key, 'mounts'):.0f} | "
                f"{typical(key, 'mounted') / MIB:.1f} | {typical(key, 'read'):.0f} | "
                f"{typical(key, 'heads'):.0f} | {typical(key, 'requests'):.0f} |"
            )
    print(
        "\n| galleon's BuildResult, median | uploaded (MiB) | mounted (MiB) | skipped (MiB) "
        "| copied (MiB) | new layer (bytes) | step (s) | peak RSS (MiB) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for case in CASES[1:]:
        for where in WHERES:
            rows = builds[case, where]

            def mid(name: str, rows: list[dict[str, float]] = rows) -> float:
                return statistics.median(r[name] for r in rows)

            print(
                f"| {case} {where} | {mid('uploaded') / MIB:.3f} | {mid('mounted') / MIB:.1f} | "
                f"{mid('skipped') / MIB:.1f} | {mid('copied') / MIB:.1f} | "
                f"{mid('layer_size'):.0f} | {mid('step_seconds'):.2f} | "
                f"{max(r['peak_rss'] for r in rows) / MIB:.0f} |"
            )
    print(f"\nuncompressed layer tar (both tools' diff_id): {len(layer_tar.data)} bytes")
    if parts:
        print("\n| where galleon's time goes (once, each part alone) | s |")
        print("|---|---|")
        for name, value in parts.items():
            print(f"| {name} | {value:.2f} |")


if __name__ == "__main__":
    main()
