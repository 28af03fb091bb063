#!/usr/bin/env python3
"""galleon's main job, locally: `make demo`.

Starts the local control plane (etcd, kube-apiserver, KCM, scheduler, kwok with
fake nodes in three regions), one registry per replica location of the example
Regions (on the ports examples/01-regions.yaml names), pushes source images, runs
the operator, applies examples/ and shows replication progress per region, then the
example ScaleSet's instances and its batched rolling upgrade to the newer version.
Ctrl-C stops everything.

Where this machine can run one (root, containerd, runc, the CNI plugins: see
docs/control-plane.md), the ScaleSet's region is a *real* node (containerd +
kubelet): the source images are runnable (busybox and a health endpoint), each
instance pulls its image from the replica galleon assigned it, and the demo shows
the instances answering with their version over HTTP during the rollout. Elsewhere
it says why and runs the region on kwok's fake nodes.

From the moment the operator runs, `kubectl galleon dashboard` serves the demo's
namespace on 127.0.0.1 (port 3100 when free): its URL is printed, and the page
shows the replication and the rollout live; it stays up with the rest.

    python hack/demo.py            # stays up until Ctrl-C (prints a KUBECONFIG to use)
    python hack/demo.py --once     # exits when the demo has run (used by the tests)
    python hack/demo.py --kwok     # fake nodes only, even where a real node could run
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from lightkube import codecs

from galleon.kube.resources import ImageBuild, ImageDefinition, ImageVersion, ScaleSet
from galleon.oci import RegistryClient
from galleon.oci.reference import parse
from galleon_testkit import nodes
from galleon_testkit.binaries import MissingBinaries
from galleon_testkit.controlplane import REAL_STORAGE_CLASS, ControlPlane
from galleon_testkit.images import TestImage, build_image, push_image
from galleon_testkit.operator import OperatorProcess
from galleon_testkit.osimages import MissingBusybox, build_os_image
from galleon_testkit.processes import ProcessFailed, free_port
from galleon_testkit.realnode import RealNode, RealNodeUnavailable
from galleon_testkit.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TEMPLATE = "hardened"
NAMESPACE = "galleon-demo"
INDEX = "galleon.dev/index"
DASHBOARD_PORT = 3100


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def example_regions() -> dict[str, list[str]]:
    return {
        d["metadata"]["name"]: [r["url"] for r in d["spec"].get("registries", [])]
        for d in documents(EXAMPLES / "01-regions.yaml")
    }


def apply(plane: ControlPlane, path: Path) -> None:
    client = plane.client()
    for document in documents(path):
        client.apply(codecs.from_dict(document), force=True)  # its own metadata.namespace
    print(f"applied {path.relative_to(ROOT)}")


def show_version(plane: ControlPlane, name: str) -> str:
    obj = plane.client().get(ImageVersion, name, namespace=NAMESPACE)
    status = obj.get("status") or {}
    replication = status.get("replicationStatus") or {}
    lines = [
        f"  {name}: {replication.get('aggregatedState', 'Unknown')} "
        f"({replication.get('completedRegions', '0/0')} regions)"
    ]
    for s in replication.get("summary") or []:
        lines.append(
            f"    {s['region']:<16} {s['state']:<12} {s['progress']:>3}%  "
            f"replicas {s['completedReplicas']}/{s['desiredReplicas']}  "
            f"copied {s['bytesCopied'] / 2**20:.1f} MiB, "
            f"skipped {s['bytesSkipped'] / 2**20:.1f} MiB"
        )
    return "\n".join(lines)


def watch_version(plane: ControlPlane, name: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        text = show_version(plane, name)
        if text != last:
            print(text, flush=True)
            last = text
        if "Completed (" in text.splitlines()[0] or "Failed (" in text.splitlines()[0]:
            return
        time.sleep(1)
    raise SystemExit(f"{name} did not finish replicating within {timeout:.0f}s")


def watch_build(plane: ControlPlane, reason: str, timeout: float = 180) -> str:
    """Wait for the template's build of `reason` to end; print it; the ImageVersion
    it published."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        found = [
            b
            for b in plane.client().list(
                ImageBuild, namespace=NAMESPACE, labels={"galleon.dev/template": TEMPLATE}
            )
            if (b.get("spec") or {}).get("reason") == reason
        ]
        if found:
            build = found[-1]
            status = build.get("status") or {}
            phase = status.get("phase", "Pending")
            text = f"  build {build['metadata']['name']} ({reason}): {phase}"
            if text != last:
                print(text, flush=True)
                last = text
            if status.get("phase") == "Failed":
                raise SystemExit(f"the build failed: {status.get('message')}")
            if status.get("phase") == "Succeeded":
                for step in status.get("steps") or []:
                    digest = (step.get("layerDigest") or "")[:19]
                    print(
                        f"    step {step['name']:<12} {step['type']:<12} "
                        f"{step.get('durationSeconds', 0):.3f}s {digest}",
                        flush=True,
                    )
                print(f"    {status.get('message')}", flush=True)
                return str(status["imageVersion"]["name"])
        time.sleep(1)
    raise SystemExit(f"no {reason} build of {TEMPLATE} ended within {timeout:.0f}s")


def show_definition(plane: ControlPlane, version: str, timeout: float = 60) -> None:
    """Print each definition's latest version per region, once every region's is
    `version` (the definition's status follows its versions' a moment later), or as
    it is when `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        lines, settled = [], True
        for obj in plane.client().list(ImageDefinition, namespace=NAMESPACE):
            status = obj.get("status") or {}
            by_region = status.get("latestVersionByRegion") or []
            settled = (
                settled and bool(by_region) and all(e["version"] == version for e in by_region)
            )
            shown = ", ".join(f"{e['region']}={e['version']}" for e in by_region)
            lines.append(
                f"  {obj['metadata']['name']}: latest {status.get('latestVersion')}; "
                f"per region: {shown}"
            )
        if settled or time.monotonic() > deadline:
            print("\n".join(lines), flush=True)
            return
        time.sleep(0.5)


def scaleset_line(status: dict[str, Any]) -> str:
    upgrade = status.get("rollingUpgrade") or {}
    running = (upgrade.get("runningStatus") or {}).get("code")
    fleet = " ".join(
        f"{v['version']}={v['instances']}({v['healthy']} healthy)"
        for v in status.get("instancesByVersion") or []
    )
    line = f"instances {fleet or '-'}"
    if upgrade:
        progress = upgrade.get("progress") or {}
        line = (
            f"{running} {upgrade.get('fromVersion')} -> {upgrade.get('toVersion')} "
            f"batch {upgrade.get('currentBatch')}/{upgrade.get('totalBatches')} "
            f"({progress.get('successfulInstanceCount', 0)} upgraded); " + line
        )
    return line


def answers(plane: ControlPlane, name: str) -> str:
    """What each instance of a ScaleSet on a real node answers on /cgi-bin/version."""
    from lightkube.resources.core_v1 import Pod

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    said = []
    pods = plane.client().list(Pod, namespace=NAMESPACE, labels={"galleon.dev/scaleset": name})
    for pod in sorted(pods, key=lambda p: int(((p.metadata and p.metadata.labels) or {})[INDEX])):
        ip = pod.status.podIP if pod.status else None
        answer = "-"
        if ip:
            try:
                with opener.open(f"http://{ip}:8080/cgi-bin/version", timeout=2) as response:
                    answer = response.read().decode().strip()
            except OSError:
                answer = "down"
        said.append(f"{pod.metadata.name if pod.metadata else '?'}={answer}")
    return " ".join(said)


def watch_scaleset(
    plane: ControlPlane,
    name: str,
    done: Any,
    what: str,
    timeout: float = 300,
    real: bool = False,
) -> dict[str, Any]:
    """Print a ScaleSet's instances and rollout whenever they change, until `done(status)`;
    on a real node, also what the instances answer over HTTP."""
    client = plane.client()
    deadline = time.monotonic() + timeout
    last = heard = ""
    while time.monotonic() < deadline:
        status = dict(client.get(ScaleSet, name, namespace=NAMESPACE).get("status") or {})
        line = scaleset_line(status)
        if line != last:
            print(f"  scaleset {name}: {line}", flush=True)
            last = line
        if real:
            said = answers(plane, name)
            if said != heard:
                print(f"    instances answer over HTTP: {said}", flush=True)
                heard = said
        if done(status):
            return status
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for ScaleSet {name} to be {what}")


def all_on(version: str, capacity: int) -> Any:
    def check(status: dict[str, Any]) -> bool:
        by_version = status.get("instancesByVersion") or []
        return by_version == [{"version": version, "instances": capacity, "healthy": capacity}]

    return check


async def push_sources(workdir: Path, size: int, runnable: bool) -> None:
    """Push the examples' source images: runnable OS images (for a real node) or
    generated layers of `size` bytes."""
    versions = [
        parse(d["spec"]["source"]["image"])
        for path in sorted(EXAMPLES.glob("*imageversion*.yaml"))
        for d in documents(path)
    ]
    previous: TestImage | None = None
    for index, reference in enumerate(sorted(versions, key=lambda r: r.tag or "")):
        folder = workdir / "images" / (reference.tag or "x")
        if runnable:
            image = build_os_image(folder, reference.tag or "0.0.0")
        else:
            image = build_image(folder, size=size, layers=4, seed=index + 1, base=previous)
        async with RegistryClient(f"http://{reference.host}") as client:
            await push_image(client, reference.repository, image, [reference.tag or "latest"])
        print(
            f"pushed {reference.host}/{reference.repository}:{reference.tag} "
            f"({image.size / 2**20:.0f} MiB, {len(image.layers)} layers)"
        )
        previous = image


def real_node(plane: ControlPlane, region: str) -> RealNode | None:
    """A real node for `region`, or None (and fake nodes there) where it cannot run."""
    try:
        node = plane.add_real_node(region, taint=False)
    except (RealNodeUnavailable, MissingBinaries, MissingBusybox, ProcessFailed) as error:
        print(f"no real node here ({error}); {region} runs on kwok's fake nodes instead")
        names = nodes.create_nodes(plane.client(), {region: 2})
        nodes.wait_nodes_usable(plane.client(), names, timeout=90)
        return None
    print(
        f"real node {node.name} up in {node.startup_seconds['node']:.1f}s "
        f"(containerd + kubelet, node IP {node.address}): {region}'s instances really run"
    )
    return node


def apply_on_real_node(plane: ControlPlane, path: Path) -> None:
    """Apply the example ScaleSet with its data disks on the real node's local volumes."""
    for document in documents(path):
        changed = copy.deepcopy(document)
        for disk in changed["spec"].get("dataDisks") or []:
            disk["storageClassName"] = REAL_STORAGE_CLASS
        plane.client().apply(codecs.from_dict(changed), force=True)
    print(f"applied {path.relative_to(ROOT)} (data disks: local volumes of the real node)")


def start_dashboard(
    plane: ControlPlane, workdir: Path
) -> tuple[subprocess.Popen[bytes], str] | None:
    """`kubectl galleon dashboard` on the demo's namespace, and its URL, printed (None,
    and says why, when it did not start: the demo goes on without it)."""
    with socket.socket() as probe:
        port = DASHBOARD_PORT if probe.connect_ex(("127.0.0.1", DASHBOARD_PORT)) else free_port()
    log = workdir / "dashboard.log"
    command = [sys.executable, "-m", "galleon.cli.main", "dashboard", "--port", str(port)]
    command += ["-n", NAMESPACE, "--kubeconfig", str(plane.kubeconfig)]
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 30
    while url not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            stop_dashboard(process)
            print(f"the dashboard did not start (log: {log})")
            return None
        time.sleep(0.2)
    print(f"dashboard: {url} (replication and rollouts, live; log: {log})", flush=True)
    return process, url


def stop_dashboard(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--once", action="store_true", help="exit when the demo has run")
    parser.add_argument("--workdir", type=Path, default=None, help="state folder (default: temp)")
    parser.add_argument("--image-mib", type=int, default=64, help="size of generated images")
    parser.add_argument("--kwok", action="store_true", help="fake nodes only, no real node")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="galleon-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    regions = example_regions()
    scaleset = documents(next(EXAMPLES.glob("*scaleset*.yaml")))[0]
    name, capacity = scaleset["metadata"]["name"], scaleset["spec"]["capacity"]
    instance_region = scaleset["spec"]["region"]
    kwok_nodes = {r: (0 if r == instance_region and not args.kwok else 2) for r in regions}
    plane = ControlPlane(workdir / "cluster", regions=kwok_nodes)
    registries: list[Registry] = []
    operator: OperatorProcess | None = None
    dashboard: tuple[subprocess.Popen[bytes], str] | None = None
    try:
        print("starting the control plane ...", flush=True)
        plane.start()
        plane.apply_crds(ROOT / "crds")
        print(f"control plane up in {plane.startup_seconds['total']:.1f}s: {plane.summary()}")
        node = None if args.kwok else real_node(plane, instance_region)
        for region, urls in regions.items():
            for url in urls:
                port = int(url.rsplit(":", 1)[1])
                registries.append(
                    Registry(workdir / "registries" / f"{region}-{port}", port).start()
                )
                if node is not None:
                    node.trust(registries[-1].host)
        print(f"{len(registries)} registries up: " + ", ".join(r.host for r in registries))
        asyncio.run(push_sources(workdir, args.image_mib << 20, runnable=node is not None))

        operator = OperatorProcess(plane.kubeconfig, workdir / "operator.log").start()
        print(f"operator running (log: {operator.log})")
        dashboard = start_dashboard(plane, workdir)

        for path in sorted(EXAMPLES.glob("*.yaml")):
            if "1.0.2" in path.name:
                continue
            if node is not None and path.name.endswith("scaleset.yaml"):
                apply_on_real_node(plane, path)
                continue
            apply(plane, path)
        first = next(
            d["metadata"]["name"] for d in documents(EXAMPLES / "04-imageversion-1.0.0.yaml")
        )
        watch_version(plane, first)
        print(f"building ImageTemplate {TEMPLATE} from it:")
        watch_version(plane, watch_build(plane, "Created"))
        real = node is not None
        watch_scaleset(plane, name, all_on("1.0.0", capacity), "running 1.0.0", real=real)
        newer_path = next(EXAMPLES.glob("*imageversion-1.0.2.yaml"))
        apply(plane, newer_path)
        watch_version(plane, documents(newer_path)[0]["metadata"]["name"])
        print(f"a new base version: ImageTemplate {TEMPLATE} builds again by itself:")
        watch_version(plane, watch_build(plane, "SourceImageUpdate"))
        print("image definitions:")
        show_definition(plane, "1.0.2")
        print(f"rolling 1.0.2 out to ScaleSet {name} in batches:")
        status = watch_scaleset(
            plane,
            name,
            lambda s: (
                all_on("1.0.2", capacity)(s)
                and ((s.get("rollingUpgrade") or {}).get("runningStatus") or {}).get("code")
                == "Completed"
            ),
            "upgraded to 1.0.2",
            real=real,
        )
        history = status.get("upgradeHistory") or []
        if history:
            entry = history[0]
            print(
                f"upgrade history: {entry['fromVersion']} -> {entry['toVersion']} "
                f"{entry['result']} ({entry['startTime']} to {entry['endTime']})"
            )
        if args.once:
            return
        print(f"\nexplore:  export KUBECONFIG={plane.kubeconfig}; kubectl get galleon -A")
        if dashboard is not None:
            print(f"          the dashboard: {dashboard[1]}")
        print("Ctrl-C stops everything.")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nstopping ...")
    finally:
        if dashboard is not None:
            stop_dashboard(dashboard[0])
        if operator is not None:
            operator.stop()
        for registry in registries:
            registry.stop()
        plane.stop()
        left = plane.leftovers()
        if left:  # a leak would only show on the next run: say it now, and fail
            print("left behind: " + "; ".join(left), file=sys.stderr)
            if sys.exc_info()[0] is None:
                sys.exit(1)
        print("stopped everything.")


if __name__ == "__main__":
    main()
