#!/usr/bin/env python3
"""Rolling upgrade benchmark on the kwok cluster: galleon's ScaleSet against the
built-in Deployment controller, side by side on one control plane, then a large
fleet for memory and API load.

    python hack/bench_rollout.py [--instances 100] [--ready-delay 2s] [--rounds 2]
                                 [--fleet-scalesets 20] [--fleet-instances 100]
                                 [--fleet-ready-delay 0s] [--fleet-deployments]
                                 [--fleet-pre-pull default|on|off]
                                 [--fleet-order scalesets-first|deployments-first]

Part 1: a ScaleSet of N instances (pinned version, mode Rolling, batches of 20%)
and a Deployment of N replicas (maxUnavailable 20%, maxSurge 0), both with pods
that kwok makes Ready `--ready-delay` after scheduling. Each round changes the
Deployment's image and the ScaleSet's pinned version (both versions already
replicated) and times until every instance runs the new one and is available;
rounds alternate the order. Also counted: kube-apiserver requests during each
rollout (all clients, from apiserver_request_total, watches excluded) and the
operator's own requests (galleon_kube_requests_total).

Part 2: F ScaleSets of M instances each are created and all upgraded at once;
printed: the time, the operator's peak RSS (VmHWM) and its requests per instance.
With --fleet-deployments, F Deployments of M replicas with the same batch policy and
readiness delay are also created and all rolled at once by the built-in controller,
on the same cluster, before or after the ScaleSets (--fleet-order); each fleet starts
with no pod left in the namespace: the time side by side.

Prints Markdown for docs/benchmarks.md. Everything listens on 127.0.0.1 and stops
at the end (or on Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from lightkube import Client, codecs
from lightkube.resources.apps_v1 import Deployment
from lightkube.types import PatchType

from galleon.kube.resources import ImageVersion, ScaleSet
from galleon.oci import RegistryClient
from galleon_testkit.controlplane import ControlPlane
from galleon_testkit.images import TestImage, build_image, push_image
from galleon_testkit.operator import OperatorProcess
from galleon_testkit.processes import free_port
from galleon_testkit.profiles import profile_apiserver, profile_operator, top_frames
from galleon_testkit.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"
STATUS_WRITE = ("PATCH", "scalesets", "status")
"""The apiserver_request_total key of the ScaleSets' status writes."""
REGION = "eastus2"


def wait(probe: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


def apply(client: Client, document: dict[str, Any]) -> None:
    client.apply(codecs.from_dict(document), force=True)


def apiserver_requests_by(plane: ControlPlane) -> dict[tuple[str, str, str], float]:
    """Requests served by kube-apiserver so far (WATCH excluded), all clients, by
    (verb, resource, subresource)."""
    text = subprocess.run(
        ["kubectl", f"--kubeconfig={plane.kubeconfig}", "get", "--raw", "/metrics"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    totals: dict[tuple[str, str, str], float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{") or 'verb="WATCH"' in line:
            continue
        inner = line[line.index("{") + 1 : line.index("}")]
        labels = dict(part.split("=", 1) for part in inner.split(","))
        verb, resource, sub = (
            labels.get(k, '""').strip('"') for k in ("verb", "resource", "subresource")
        )
        key = (verb, resource, sub)
        totals[key] = totals.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


def apiserver_requests(plane: ControlPlane) -> float:
    """Requests served by kube-apiserver so far (WATCH excluded), all clients."""
    return sum(apiserver_requests_by(plane).values())


def operator_metric(url: str, name: str, having: str = "") -> float:
    """The sum of a metric's samples (those whose labels contain `having`, if given)."""
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if (line.startswith(name + "{") or line.startswith(name + " ")) and having in line
    )


def scaleset_passes(url: str) -> float:
    """ScaleSet passes run so far (galleon_reconcile_total of the controller)."""
    return operator_metric(url, "galleon_reconcile_total", 'controller="scaleset"')


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def template(ready_delay: str, app: str) -> dict[str, Any]:
    return {
        "metadata": {
            "labels": {"app": app},
            "annotations": {"galleon.test/ready-delay": ready_delay},
        },
        "spec": {
            "nodeSelector": {"topology.kubernetes.io/region": REGION},
            "containers": [
                {
                    "name": "os",
                    "image": "set-by-galleon",
                    "readinessProbe": {"httpGet": {"path": "/", "port": 8080}},
                }
            ],
        },
    }


def scaleset(
    name: str, capacity: int, version: str, ready_delay: str, pre_pull: bool | None = None
) -> dict[str, Any]:
    rolling: dict[str, Any] = {
        "maxBatchInstancePercent": 20,
        "maxUnhealthyInstancePercent": 20,
        "maxUnhealthyUpgradedInstancePercent": 20,
    }
    if pre_pull is not None:
        rolling["prePullImages"] = pre_pull
    return {
        "apiVersion": "galleon.dev/v1alpha1",
        "kind": "ScaleSet",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "region": REGION,
            "capacity": capacity,
            "imageReference": {"imageDefinitionName": "os", "version": version},
            "osContainerName": "os",
            "template": template(ready_delay, name),
            "upgradePolicy": {"mode": "Rolling", "rollingUpgradePolicy": rolling},
        },
    }


def deployment(name: str, replicas: int, image: str, ready_delay: str) -> dict[str, Any]:
    pod = template(ready_delay, name)
    pod["spec"]["containers"][0]["image"] = image
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "20%", "maxSurge": 0},
            },
            "template": pod,
        },
    }


def scaleset_on(client: Client, name: str, version: str, capacity: int) -> bool:
    status = client.get(ScaleSet, name, namespace=NAMESPACE).get("status") or {}
    return (status.get("instancesByVersion") or []) == [
        {"version": version, "instances": capacity, "healthy": capacity}
    ] and status.get("replicas") == capacity


def ended(client: Client, names: list[str], version: str) -> str:
    """ "20 Completed" when every ScaleSet's upgrade to `version` ended ("" until then)."""
    codes: dict[str, int] = {}
    for name in names:
        status = client.get(ScaleSet, name, namespace=NAMESPACE).get("status") or {}
        upgrade = status.get("rollingUpgrade") or {}
        code = (upgrade.get("runningStatus") or {}).get("code", "")
        if upgrade.get("toVersion") != version or upgrade.get("phase") != "Done":
            return ""
        codes[code] = codes.get(code, 0) + 1
    return ", ".join(f"{n} {code}" for code, n in sorted(codes.items()))


def deployment_done(client: Client, name: str, image: str, replicas: int) -> bool:
    d = client.get(Deployment, name, namespace=NAMESPACE)
    s, template, meta = d.status, d.spec.template.spec if d.spec else None, d.metadata
    return bool(
        s
        and template
        and meta
        and template.containers[0].image == image
        and (s.observedGeneration or 0) >= (meta.generation or 0)
        and s.updatedReplicas == replicas
        and s.availableReplicas == replicas
        and (s.replicas or 0) == replicas
    )


def push_sources(registry: Registry, images: dict[str, TestImage]) -> dict[str, str]:
    """Push each version's image to `sources/os:<version>`; version → digest."""

    async def push() -> dict[str, str]:
        async with RegistryClient(registry.url) as rc:
            return {
                v: await push_image(rc, "sources/os", image, [v]) for v, image in images.items()
            }

    return asyncio.run(push())


def world(
    client: Client,
    registry: Registry,
    versions: tuple[str, ...] = ("1.0.0", "1.0.2"),
    *,
    node_selector: dict[str, str] | None = None,
    timeout: float = 120,
) -> None:
    """The Namespace, the Region (whose one replica is `registry`, on the nodes of
    `node_selector` when given), gallery, definition, and one ImageVersion per version
    (sources already pushed to `registry`), waited on until each is replicated."""
    region_spec: dict[str, Any] = {"registries": [{"name": "a", "url": registry.url}]}
    if node_selector:
        region_spec["nodeSelector"] = node_selector
    documents: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "galleon.dev/v1alpha1",
            "kind": "Region",
            "metadata": {"name": REGION},
            "spec": region_spec,
        },
        {
            "apiVersion": "galleon.dev/v1alpha1",
            "kind": "Gallery",
            "metadata": {"name": "gallery", "namespace": NAMESPACE},
            "spec": {"location": REGION},
        },
        {
            "apiVersion": "galleon.dev/v1alpha1",
            "kind": "ImageDefinition",
            "metadata": {"name": "os", "namespace": NAMESPACE},
            "spec": {
                "galleryName": "gallery",
                "identifier": {"publisher": "bench", "offer": "bench", "sku": "os"},
                "osType": "Linux",
            },
        },
    ]
    for version in versions:
        documents.append(
            {
                "apiVersion": "galleon.dev/v1alpha1",
                "kind": "ImageVersion",
                "metadata": {"name": "os-" + version.replace(".", "-"), "namespace": NAMESPACE},
                "spec": {
                    "imageDefinitionName": "os",
                    "version": version,
                    "source": {"image": f"{registry.host}/sources/os:{version}", "plainHTTP": True},
                    "publishingProfile": {"targetRegions": [{"name": REGION}]},
                },
            }
        )
    for document in documents:
        apply(client, document)
    for version in versions:
        name = "os-" + version.replace(".", "-")
        wait(
            lambda n=name: (
                (client.get(ImageVersion, n, namespace=NAMESPACE).get("status") or {})
                .get("replicationStatus", {})
                .get("aggregatedState")
                == "Completed"
            ),
            timeout,
            f"{name} replicated",
        )


def timed(
    plane: ControlPlane, metrics: str, change: Any, done: Any, timeout: float
) -> dict[str, float]:
    requests, own = (
        apiserver_requests(plane),
        operator_metric(metrics, "galleon_kube_requests_total"),
    )
    began = time.monotonic()
    change()
    wait(done, timeout, "rollout to finish", interval=0.1)
    seconds = time.monotonic() - began
    return {
        "seconds": seconds,
        "apiserver": apiserver_requests(plane) - requests,
        "operator": operator_metric(metrics, "galleon_kube_requests_total") - own,
    }


def side_by_side(
    plane: ControlPlane,
    metrics: str,
    client: Client,
    n: int,
    rounds: int,
    image: dict[str, str],
    *,
    requests: bool = False,
    versions: list[str] | None = None,
) -> dict[str, list[dict[str, float]]]:
    """Round by round, the Deployment `deploy` (to `image[version]`) and the ScaleSet
    `ss` (to `version`) rolled in turn to `versions[round]` (default: between 1.0.2 and
    1.0.0), alternating which goes first; each rollout `timed`. Prints a line per
    rollout (with the requests counted when `requests`)."""
    rows: dict[str, list[dict[str, float]]] = {"Deployment": [], "ScaleSet": []}
    for round_ in range(rounds):
        version = versions[round_] if versions else ("1.0.2", "1.0.0")[round_ % 2]
        order = ["Deployment", "ScaleSet"] if round_ % 2 == 0 else ["ScaleSet", "Deployment"]
        for kind in order:
            if kind == "Deployment":
                patch = {
                    "spec": {
                        "template": {
                            "spec": {"containers": [{"name": "os", "image": image[version]}]}
                        }
                    }
                }
                result = timed(
                    plane,
                    metrics,
                    lambda p=patch: client.patch(
                        Deployment, "deploy", p, namespace=NAMESPACE, patch_type=PatchType.STRATEGIC
                    ),
                    lambda v=version: deployment_done(client, "deploy", image[v], n),
                    600,
                )
            else:
                result = timed(
                    plane,
                    metrics,
                    lambda v=version: client.patch(
                        ScaleSet,
                        "ss",
                        {"spec": {"imageReference": {"version": v}}},
                        namespace=NAMESPACE,
                        patch_type=PatchType.MERGE,
                    ),
                    lambda v=version: scaleset_on(client, "ss", v, n),
                    600,
                )
            rows[kind].append(result)
            counted = (
                f", {result['apiserver']:.0f} apiserver requests, "
                f"{result['operator']:.0f} by the operator"
                if requests
                else ""
            )
            print(
                f"round {round_ + 1} {kind:<10} to {version}: {result['seconds']:6.1f} s{counted}",
                flush=True,
            )
    return rows


def stop_real_node_run(
    operator: OperatorProcess | None,
    registry: Registry,
    plane: ControlPlane,
    operator_log: Path | None,
) -> None:
    """Stop what a real-node benchmark started (keeping the operator's log at
    `operator_log` when asked) and fail when the node left anything behind."""
    if operator is not None:
        operator.stop()
        if operator_log:
            shutil.copy(operator.log, operator_log)
    registry.stop()
    plane.stop()
    left = plane.leftovers()
    if left:
        print(f"left behind: {left}", file=sys.stderr)
        raise SystemExit(1)


COMPONENTS = ("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok")


def cpu_seconds(pid: int | None) -> float:
    """User and system CPU time a process has used so far (0 without one)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_of(plane: ControlPlane, operator_pid: int) -> dict[str, float]:
    """CPU seconds so far of the operator and of each control plane component."""
    found = {name: cpu_seconds(plane.pid(name)) for name in COMPONENTS}
    found["operator"] = cpu_seconds(operator_pid)
    return found


def cpu_since(plane: ControlPlane, operator_pid: int, before: dict[str, float]) -> str:
    """`operator 12, kube-apiserver 40, ...`: CPU seconds of each since `before`."""
    now = cpu_of(plane, operator_pid)
    return ", ".join(f"{name} {now[name] - before[name]:.0f}" for name in ("operator", *COMPONENTS))


def pods_gone(client: Client) -> None:
    """Wait until the namespace holds no pod (terminating ones included)."""
    from lightkube.resources.core_v1 import Pod

    wait(
        lambda: not list(client.list(Pod, namespace=NAMESPACE)),
        900,
        "the namespace's pods gone",
        interval=2,
    )


def fleet_of_scalesets(
    plane: ControlPlane, client: Client, metrics: str, pid: int, f: int, m: int, args: Any
) -> dict[str, Any]:
    """F ScaleSets of M instances created, then all upgraded at once, then deleted
    (their pods gone); the seconds of each, the requests and the RSS."""
    began = time.monotonic()
    for i in range(f):
        apply(
            client,
            scaleset(f"fleet-{i}", m, "1.0.0", args.fleet_ready_delay, args.fleet_pre_pull),
        )
    wait(
        lambda: all(scaleset_on(client, f"fleet-{i}", "1.0.0", m) for i in range(f)),
        900,
        f"{f * m} instances ready",
        interval=2,
    )
    created = time.monotonic() - began
    idle_rss = rss_mib(pid)
    own = operator_metric(metrics, "galleon_kube_requests_total")
    passes = scaleset_passes(metrics)
    writes = apiserver_requests_by(plane).get(STATUS_WRITE, 0.0)
    cpu = cpu_of(plane, pid)
    began = time.monotonic()
    profile = profile_apiserver(
        plane, args.apiserver_profile and args.apiserver_profile / "scalesets.pprof"
    )
    spied = args.operator_profile and args.operator_profile / "operator.txt"
    spy = profile_operator(pid, spied)
    for i in range(f):
        client.patch(
            ScaleSet,
            f"fleet-{i}",
            {"spec": {"imageReference": {"version": "1.0.2"}}},
            namespace=NAMESPACE,
            patch_type=PatchType.MERGE,
        )
    results = wait(
        lambda: ended(client, [f"fleet-{i}" for i in range(f)], "1.0.2"),
        1800,
        f"{f * m} instances upgraded",
        interval=2,
    )
    upgraded = time.monotonic() - began
    cpu_used = cpu_since(plane, pid, cpu)
    if profile is not None:
        profile.join()
    if spy is not None:
        spy.join()
        if spied.exists():
            print(top_frames(spied), flush=True)
    per_instance = (operator_metric(metrics, "galleon_kube_requests_total") - own) / (f * m)
    passes = (scaleset_passes(metrics) - passes) / (f * m)
    writes = (apiserver_requests_by(plane).get(STATUS_WRITE, 0.0) - writes) / (f * m)
    for i in range(f):
        client.delete(ScaleSet, f"fleet-{i}", namespace=NAMESPACE)
    pods_gone(client)
    return {
        "created": created,
        "upgraded": upgraded,
        "results": results,
        "per_instance": per_instance,
        "status_writes": writes,
        "passes": passes,
        "idle_rss": idle_rss,
        "cpu": cpu_used,
    }


def fleet_of_deployments(
    plane: ControlPlane,
    client: Client,
    pid: int,
    f: int,
    m: int,
    image: dict[str, str],
    args: Any,
) -> dict[str, Any]:
    """F Deployments of M replicas created, then all rolled to the new image at once,
    then deleted (their pods gone); the seconds of each."""
    names = [f"fleet-d{i}" for i in range(f)]
    began = time.monotonic()
    for name in names:
        apply(client, deployment(name, m, image["1.0.0"], args.fleet_ready_delay))
    wait(
        lambda: all(deployment_done(client, n, image["1.0.0"], m) for n in names),
        1800,
        f"{f * m} replicas available",
        interval=2,
    )
    created = time.monotonic() - began
    cpu = cpu_of(plane, pid)
    began = time.monotonic()
    profile = profile_apiserver(
        plane, args.apiserver_profile and args.apiserver_profile / "deployments.pprof"
    )
    for name in names:
        client.patch(
            Deployment,
            name,
            {
                "spec": {
                    "template": {"spec": {"containers": [{"name": "os", "image": image["1.0.2"]}]}}
                }
            },
            namespace=NAMESPACE,
            patch_type=PatchType.STRATEGIC,
        )
    wait(
        lambda: all(deployment_done(client, n, image["1.0.2"], m) for n in names),
        1800,
        f"{f * m} replicas rolled",
        interval=2,
    )
    rolled = time.monotonic() - began
    cpu_used = cpu_since(plane, pid, cpu)
    if profile is not None:
        profile.join()
    for name in names:
        client.delete(Deployment, name, namespace=NAMESPACE)
    pods_gone(client)
    return {"created": created, "rolled": rolled, "cpu": cpu_used}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--ready-delay", default="2s")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--fleet-scalesets", type=int, default=20)
    parser.add_argument("--fleet-instances", type=int, default=100)
    parser.add_argument("--fleet-ready-delay", default="0s")
    parser.add_argument(
        "--fleet-pre-pull",
        choices=("default", "on", "off"),
        default="default",
        help="the fleet's prePullImages (default: unset, which is on in Rolling mode)",
    )
    parser.add_argument(
        "--fleet-deployments", action="store_true", help="also roll F Deployments of M"
    )
    parser.add_argument(
        "--apiserver-profile",
        type=Path,
        help="a folder: a 30 s CPU profile of kube-apiserver from the start of each "
        "fleet's rollout (scalesets.pprof, deployments.pprof)",
    )
    parser.add_argument(
        "--operator-profile",
        type=Path,
        help="a folder: a 30 s py-spy profile of the operator from the start of the "
        "ScaleSets' upgrade (operator.txt, collapsed stacks; its top frames are printed)",
    )
    parser.add_argument(
        "--fleet-order",
        choices=("scalesets-first", "deployments-first"),
        default="scalesets-first",
        help="which fleet runs first on the cluster (each starts with no pod left)",
    )
    args = parser.parse_args()
    n = args.instances
    args.fleet_pre_pull = {"default": None, "on": True, "off": False}[args.fleet_pre_pull]
    fleet_total = args.fleet_scalesets * args.fleet_instances
    # kwok nodes hold 110 pods; 80 each leaves room for terminating and pull pods.
    nodes = max(4, -(-(fleet_total + 2 * n) // 80) + 2)
    with tempfile.TemporaryDirectory(prefix="galleon-bench-rollout-") as tmp:
        workdir = Path(tmp)
        plane = ControlPlane(
            workdir / "cluster", regions={REGION: nodes}, profiling=bool(args.apiserver_profile)
        )
        registry = Registry(workdir / "registry", free_port())
        operator: OperatorProcess | None = None
        try:
            plane.start()
            plane.apply_crds(ROOT / "crds")
            registry.start()
            operator = OperatorProcess(plane.kubeconfig, workdir / "operator.log").start()
            metrics = operator.metrics_url
            assert operator.pid is not None
            pid = operator.pid
            base = build_image(workdir / "img-1.0.0", size=1 << 20, layers=2, seed=1)
            newer = build_image(workdir / "img-1.0.2", size=0, layers=0, seed=2, base=base)
            push_sources(registry, {"1.0.0": base, "1.0.2": newer})
            world(plane.client(), registry)
            client = plane.client()
            print(
                f"control plane: {nodes} kwok nodes; "
                f"pods Ready {args.ready_delay} after scheduling\n"
            )

            # Part 1: side by side.
            image = {"1.0.0": "registry.invalid/os:1.0.0", "1.0.2": "registry.invalid/os:1.0.2"}
            apply(client, scaleset("ss", n, "1.0.0", args.ready_delay))
            apply(client, deployment("deploy", n, image["1.0.0"], args.ready_delay))
            wait(lambda: scaleset_on(client, "ss", "1.0.0", n), 300, "ScaleSet ready")
            wait(
                lambda: deployment_done(client, "deploy", image["1.0.0"], n),
                300,
                "Deployment ready",
            )
            rows = side_by_side(plane, metrics, client, n, args.rounds, image, requests=True)
            deploy = statistics.median(r["seconds"] for r in rows["Deployment"])
            ours = statistics.median(r["seconds"] for r in rows["ScaleSet"])
            print(f"\n| {n} instances, 20% batches | Deployment | ScaleSet | ratio |")
            print("|---|---|---|---|")
            print(
                f"| rollout time, median of {args.rounds} (s) | {deploy:.1f} | {ours:.1f} "
                f"| {ours / deploy:.2f}x |"
            )
            api_d = statistics.median(r["apiserver"] for r in rows["Deployment"]) / n
            api_s = statistics.median(r["apiserver"] for r in rows["ScaleSet"]) / n
            own = statistics.median(r["operator"] for r in rows["ScaleSet"]) / n
            print(f"| apiserver requests per instance, all clients | {api_d:.1f} | {api_s:.1f} | |")
            print(f"| requests per instance by the controller itself | | {own:.1f} | |")
            client.delete(Deployment, "deploy", namespace=NAMESPACE)
            client.delete(ScaleSet, "ss", namespace=NAMESPACE)

            # Part 2: a large fleet.
            f, m = args.fleet_scalesets, args.fleet_instances
            pods_gone(client)
            deployed: dict[str, Any] = {}
            if args.fleet_deployments and args.fleet_order == "deployments-first":
                deployed = fleet_of_deployments(plane, client, pid, f, m, image, args)
            fleet = fleet_of_scalesets(plane, client, metrics, pid, f, m, args)
            if args.fleet_deployments and args.fleet_order == "scalesets-first":
                deployed = fleet_of_deployments(plane, client, pid, f, m, image, args)
            pulls = {None: "default (on)", True: "on", False: "off"}[args.fleet_pre_pull]
            print(f"\n| {f} ScaleSets x {m} instances ({f * m}), pre-pull {pulls} | |")
            print("|---|---|")
            print(f"| create and reach Ready (s) | {fleet['created']:.0f} |")
            print(f"| upgrade all at once, 20% batches (s) | {fleet['upgraded']:.0f} |")
            print(f"| upgrade results | {fleet['results']} |")
            print(f"| operator requests per upgraded instance | {fleet['per_instance']:.1f} |")
            print(f"| ScaleSet status writes per instance | {fleet['status_writes']:.2f} |")
            print(f"| ScaleSet passes per instance | {fleet['passes']:.2f} |")
            print(f"| operator RSS with the fleet idle (MiB) | {fleet['idle_rss']:.0f} |")
            print(f"| operator peak RSS, whole run (MiB) | {peak_rss_mib(pid):.0f} |")
            print(f"| CPU seconds during the upgrade | {fleet['cpu']} |")
            if deployed:
                print(f"| order | {args.fleet_order} |")
                print(
                    f"| {f} Deployments x {m} replicas: create and reach available (s) | "
                    f"{deployed['created']:.0f} |"
                )
                print(
                    f"| {f} Deployments x {m} replicas: roll all at once, maxUnavailable 20% "
                    f"(s) | {deployed['rolled']:.0f} |"
                )
                print(f"| CPU seconds during the Deployments' rollout | {deployed['cpu']} |")
                print(
                    f"| ScaleSets' upgrade vs the Deployments' rollout | "
                    f"{fleet['upgraded'] / deployed['rolled']:.2f}x (goal ≤ 1.1x) |"
                )
        except KeyboardInterrupt:
            print("interrupted")
        finally:
            if operator is not None:
                operator.stop()
            registry.stop()
            plane.stop()


if __name__ == "__main__":
    main()
