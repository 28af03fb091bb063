#!/usr/bin/env python3
# mypy: disable-error-code="union-attr"
# (lightkube objects' fields are all Optional)
"""Pre-pull on a real node: each instance's not-ready time during a Rolling upgrade to
a big OS image, with galleon's pre-pull (`prePullImages: true`) and without it.

    python hack/bench_prepull.py [--rounds 2] [--instances 3] [--batch-percent 34]
                                 [--padding-mib 128] [--first on|off] [--events]

One control plane with one real node (containerd + kubelet, `galleon_testkit.realnode`,
tainted; the instances tolerate it), one registry that holds both the sources and the
region's replica, and runnable OS images (`galleon_testkit.osimages`) padded with a
layer of `--padding-mib` MiB of random bytes seeded by the version: every version's
big layer is its own, so a version the node never ran is never cached there. A
ScaleSet of N instances (pinned version, mode Rolling) starts on 1.0.0 and is
upgraded once to 1.0.1 without measuring (a fresh kubelet's first pod terminations
are slower, whatever the mode); then each round upgrades it twice, once with
pre-pull on and once off (the order alternates by round, `--first` says round 1's),
each time to a version the node has not pulled yet (1.0.2, 1.0.3, ...), which the
script checks against containerd before the upgrade starts.

Measured per upgrade, from a pod watch (times taken when the event arrives here):
- each instance's not-ready time: from the moment its old pod stops being Ready
  (not Ready, being deleted, or gone: whichever is seen first) to the moment its new
  pod (another UID, the new version) is Ready, and of that the new pod's share (from
  its creation to Ready: the pull when not pre-pulled, then sandbox, start, probe);
  "first batch" is the instances that went down before any new pod was Ready (on one
  node, the only ones that pull without pre-pull: later batches find the image);
- the whole upgrade: from the patch of the pinned version to the ScaleSet's status
  saying every instance runs the new version and is healthy;
- when the first instance went down after the patch (the pre-pull's hold shows here),
  and how many pull pods ran and how long they took.

Prints Markdown for docs/benchmarks.md. Needs root and the real-node packages
(hack/setup.sh); every wait is bounded; everything listens on 127.0.0.1 or the
node's bridge and stops at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lightkube import Client
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_rollout as common
from galleon.kube.resources import ScaleSet
from galleon_testkit.controlplane import ControlPlane
from galleon_testkit.images import TestImage
from galleon_testkit.operator import OperatorProcess
from galleon_testkit.osimages import HEALTH_PATH, PORT, build_os_image
from galleon_testkit.processes import free_port
from galleon_testkit.realnode import REAL_NODE_LABEL, TOLERATION
from galleon_testkit.registry import Registry

REGION = common.REGION
NAMESPACE = common.NAMESPACE
NAME = "ss"
SCALESET_LABEL = "galleon.dev/scaleset"
VERSION_LABEL = "galleon.dev/version"
PULL_LABEL = "galleon.dev/prepull-for"
PAST_PULLING = ("Running", "Succeeded", "Failed")
UPGRADE_TIMEOUT = 600.0
"""Seconds an upgrade may take before the script gives up (the pulls wait 5 minutes
at most, then the upgrade goes on without them)."""


@dataclass(frozen=True)
class PodEvent:
    """One watch event of a pod in the namespace, stamped when it arrived here."""

    at: float
    kind: str  # ADDED, MODIFIED, DELETED
    name: str
    uid: str
    labels: dict[str, str]
    ready: bool
    deleting: bool
    phase: str


class PodEvents:
    """Every pod event of the namespace, recorded by a watch in a thread of its own."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.events: list[PodEvent] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="pod-watch")

    def start(self) -> PodEvents:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def since(self, began: float) -> list[PodEvent]:
        with self._lock:
            return [e for e in self.events if e.at >= began]

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                for kind, pod in self.client.watch(Pod, namespace=NAMESPACE):
                    self._record(kind, pod)
                    if self._stopped.is_set():
                        return
            except Exception:  # the watch broke (the plane stops at the end): again
                time.sleep(0.2)

    def _record(self, kind: str, pod: Pod) -> None:
        now = time.monotonic()
        status = pod.status
        conditions = (status.conditions if status else None) or []
        event = PodEvent(
            at=now,
            kind=kind,
            name=str(pod.metadata.name),
            uid=str(pod.metadata.uid),
            labels=dict(pod.metadata.labels or {}),
            ready=any(c.type == "Ready" and c.status == "True" for c in conditions),
            deleting=pod.metadata.deletionTimestamp is not None,
            phase=str((status.phase if status else None) or ""),
        )
        with self._lock:
            self.events.append(event)


def template() -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": NAME}},
        "spec": {
            "tolerations": [TOLERATION],
            "terminationGracePeriodSeconds": 5,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "containers": [
                {
                    "name": "os",
                    "image": "set-by-galleon",
                    "imagePullPolicy": "IfNotPresent",
                    "ports": [{"containerPort": PORT}],
                    "readinessProbe": {
                        "httpGet": {"path": HEALTH_PATH, "port": PORT},
                        "periodSeconds": 1,
                        "failureThreshold": 1,
                        "timeoutSeconds": 2,
                    },
                }
            ],
        },
    }


def scaleset(capacity: int, batch_percent: int) -> dict[str, Any]:
    return {
        "apiVersion": "galleon.dev/v1alpha1",
        "kind": "ScaleSet",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "region": REGION,
            "capacity": capacity,
            "imageReference": {"imageDefinitionName": "os", "version": "1.0.0"},
            "osContainerName": "os",
            "template": template(),
            "upgradePolicy": {
                "mode": "Rolling",
                "rollingUpgradePolicy": {
                    "maxBatchInstancePercent": batch_percent,
                    "maxUnhealthyInstancePercent": max(50, batch_percent),
                    "maxUnhealthyUpgradedInstancePercent": 50,
                    "upgradedInstanceHealthTimeout": "PT2M",
                },
            },
        },
    }


def set_pre_pull(client: Client, enabled: bool) -> None:
    """Set `prePullImages` and wait until the operator has seen that generation (no
    upgrade is due: the pinned version is the one running)."""
    patch = {"spec": {"upgradePolicy": {"rollingUpgradePolicy": {"prePullImages": enabled}}}}
    changed = client.patch(ScaleSet, NAME, patch, namespace=NAMESPACE, patch_type=PatchType.MERGE)
    generation = changed["metadata"]["generation"]
    common.wait(
        lambda: (
            (client.get(ScaleSet, NAME, namespace=NAMESPACE).get("status") or {}).get(
                "observedGeneration", 0
            )
            >= generation
        ),
        60,
        "the ScaleSet's new generation to be observed",
    )


def instances(client: Client) -> dict[str, str]:
    """Instance pod name → UID, of the pods not being deleted."""
    return {
        str(p.metadata.name): str(p.metadata.uid)
        for p in client.list(Pod, namespace=NAMESPACE, labels={SCALESET_LABEL: NAME})
        if p.metadata.deletionTimestamp is None
    }


@dataclass(frozen=True)
class Outage:
    """One instance's replacement, in seconds of this script's clock."""

    down: float
    """Its old pod first seen not Ready, being deleted, or gone."""
    created: float
    """Its new pod first seen."""
    ready: float
    """Its new pod (the new version) first seen Ready."""

    @property
    def not_ready(self) -> float:
        return self.ready - self.down

    @property
    def start(self) -> float:
        """From the new pod's creation to Ready: the pull (if any), sandbox, start, probe."""
        return self.ready - self.created


def outages(events: list[PodEvent], old: dict[str, str], version: str) -> dict[str, Outage]:
    """Instance → its replacement by a pod of `version`, from the watch's events."""
    found: dict[str, Outage] = {}
    for name, uid in sorted(old.items()):
        down = next(
            (
                e.at
                for e in events
                if e.name == name
                and e.uid == uid
                and (e.kind == "DELETED" or e.deleting or not e.ready)
            ),
            None,
        )
        if down is None:
            raise SystemExit(f"{name} ({uid}) was never seen going down")
        new = [
            e
            for e in events
            if e.at >= down
            and e.name == name
            and e.uid != uid
            and e.kind != "DELETED"
            and e.labels.get(VERSION_LABEL) == version
        ]
        ready = next((e.at for e in new if e.ready and not e.deleting), None)
        if ready is None:
            raise SystemExit(f"{name}'s new pod on {version} was never seen Ready")
        found[name] = Outage(down, new[0].at, ready)
    return found


def pull_pods(events: list[PodEvent]) -> tuple[int, float | None]:
    """(pull pods seen, seconds from the first one's creation until every one of them
    is past pulling: its phase Running, Succeeded or Failed; None if one never was)."""
    pulls = [e for e in events if PULL_LABEL in e.labels]
    uids = {e.uid for e in pulls}
    if not uids:
        return 0, None
    created = min(e.at for e in pulls)
    past = [
        next((e.at for e in pulls if e.uid == u and e.phase in PAST_PULLING), None) for u in uids
    ]
    if any(at is None for at in past):
        return len(uids), None
    return len(uids), max(at for at in past if at is not None) - created


def upgrade(
    client: Client,
    watch: PodEvents,
    node: Any,
    version: str,
    digest: str,
    capacity: int,
    pre_pull: bool,
) -> dict[str, Any]:
    """One measured upgrade to `version` (not on the node yet) with pre-pull on or off."""
    held = set(node.images().values())
    if digest in held:
        raise SystemExit(f"{version} ({digest}) is already on the node: the run would not pull")
    set_pre_pull(client, pre_pull)
    old = instances(client)
    began = time.monotonic()
    client.patch(
        ScaleSet,
        NAME,
        {"spec": {"imageReference": {"version": version}}},
        namespace=NAMESPACE,
        patch_type=PatchType.MERGE,
    )
    common.wait(
        lambda: common.scaleset_on(client, NAME, version, capacity),
        UPGRADE_TIMEOUT,
        f"the upgrade to {version}",
        interval=0.1,
    )
    took = time.monotonic() - began
    time.sleep(0.5)  # the last Ready events to arrive
    events = watch.since(began)
    replaced = outages(events, old, version)
    pulls, pulled_in = pull_pods(events)
    # Pull pods go once no upgrade to their revision is due: wait for that, so that the
    # next run starts clean.
    common.wait(
        lambda: not list(client.list(Pod, namespace=NAMESPACE, labels={PULL_LABEL: NAME})),
        120,
        "the pull pods to go",
    )
    return {
        "version": version,
        "pre_pull": pre_pull,
        "upgrade": took,
        "first_down": min(o.down for o in replaced.values()) - began,
        "not_ready": {name: o.not_ready for name, o in replaced.items()},
        "start": {name: o.start for name, o in replaced.items()},
        # The first batch: the instances that went down before any new pod was Ready.
        "first_batch": [
            o.not_ready
            for o in replaced.values()
            if o.down < min(other.ready for other in replaced.values())
        ],
        "pull_pods": pulls,
        "pulled_in": pulled_in,
        "events": [replace(e, at=e.at - began) for e in events],
    }


def build(workdir: Path, versions: list[str], padding: int) -> dict[str, TestImage]:
    return {v: build_os_image(workdir / f"os-{v}", v, padding=padding) for v in versions}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2, help="each round: one upgrade per mode")
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument(
        "--batch-percent", type=int, default=34, help="maxBatchInstancePercent (34: one by one)"
    )
    parser.add_argument("--padding-mib", type=int, default=128, help="the big layer's size")
    parser.add_argument(
        "--first", choices=("on", "off"), default="on", help="pre-pull in round 1's first upgrade"
    )
    parser.add_argument("--operator-log", type=Path, help="keep the operator's (debug) log there")
    parser.add_argument(
        "--events", action="store_true", help="print each upgrade's pod events as they came"
    )
    args = parser.parse_args()
    n = args.instances
    versions = [f"1.0.{i}" for i in range(2 * args.rounds + 2)]
    with tempfile.TemporaryDirectory(prefix="galleon-bench-prepull-") as tmp:
        workdir = Path(tmp)
        plane = ControlPlane(workdir / "cluster", regions={}, real_nodes={REGION: 1})
        registry = Registry(workdir / "registry", free_port())
        operator: OperatorProcess | None = None
        watch: PodEvents | None = None
        try:
            began = time.monotonic()
            images = build(workdir, versions, args.padding_mib << 20)
            size = images[versions[0]].size / (1 << 20)
            built = time.monotonic() - began
            print(f"built {len(images)} OS images of {size:.1f} MiB in {built:.1f}s")
            plane.start()
            node = next(iter(plane.real_nodes.values()))
            plane.apply_crds(common.ROOT / "crds")
            registry.start()
            node.trust(registry.host)

            digests = common.push_sources(registry, images)
            operator = OperatorProcess(
                plane.kubeconfig, workdir / "operator.log", verbose=bool(args.operator_log)
            ).start()
            client = plane.client()
            common.world(
                client,
                registry,
                tuple(versions),
                node_selector={REAL_NODE_LABEL: "true"},
                timeout=300,
            )
            print(f"real node {node.name} up in {node.startup_seconds['node']:.1f}s")
            watch = PodEvents(plane.client()).start()
            common.apply(client, scaleset(n, args.batch_percent))
            common.wait(lambda: common.scaleset_on(client, NAME, "1.0.0", n), 300, "1.0.0")
            print(f"{n} instances on 1.0.0", flush=True)
            # The first pods a fresh kubelet stops take a second or two longer to go
            # (whatever the mode): one upgrade, not measured, before the measured ones.
            warmup = upgrade(client, watch, node, versions[1], digests[versions[1]], n, False)
            print(f"warm-up upgrade to {versions[1]} (not measured): {warmup['upgrade']:.1f} s\n")

            runs: list[dict[str, Any]] = []
            next_version = iter(versions[2:])
            for round_ in range(args.rounds):
                first = args.first == "on"
                order = [first, not first] if round_ % 2 == 0 else [not first, first]
                for pre_pull in order:
                    version = next(next_version)
                    run = upgrade(client, watch, node, version, digests[version], n, pre_pull)
                    run["round"] = round_ + 1
                    if args.events:
                        print_events(run)
                    runs.append(run)
                    mode = "on " if pre_pull else "off"
                    print(
                        f"round {round_ + 1} pre-pull {mode} to {version}: upgrade "
                        f"{run['upgrade']:.1f} s, first down after {run['first_down']:.1f} s, "
                        f"not ready {seconds(run['not_ready'].values())} s, "
                        f"pull pods {run['pull_pods']}",
                        flush=True,
                    )
            report(runs, n, args.batch_percent, size)
        finally:
            if watch is not None:
                watch.stop()
            common.stop_real_node_run(operator, registry, plane, args.operator_log)


def print_events(run: dict[str, Any]) -> None:
    """Each pod event of the upgrade: seconds after the patch, what changed."""
    for e in run["events"]:
        version = e.labels.get(VERSION_LABEL) or e.labels.get("galleon.dev/prepull-revision", "")
        flags = ("Ready" if e.ready else "not-ready") + (" deleting" if e.deleting else "")
        print(f"  {e.at:6.2f} {e.kind:<8} {e.name:<22} {e.uid[:8]} {version:<14} {e.phase} {flags}")


def seconds(values: Any) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def report(runs: list[dict[str, Any]], n: int, batch_percent: int, size: float) -> None:
    batch = max(1, n * batch_percent // 100)
    print()
    print(
        "| round | pre-pull | version | upgrade (s) | first instance down after (s) "
        "| pull pods, all pulled after (s) | not-ready per instance (s) "
        "| of which new pod created → Ready (s) | median (s) | max (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        values = list(run["not_ready"].values())
        pulled = "-" if run["pulled_in"] is None else f"{run['pulled_in']:.1f}"
        print(
            f"| {run['round']} | {'on' if run['pre_pull'] else 'off'} | {run['version']} "
            f"| {run['upgrade']:.1f} | {run['first_down']:.1f} | {run['pull_pods']}, {pulled} "
            f"| {seconds(values)} | {seconds(run['start'].values())} "
            f"| {statistics.median(values):.1f} | {max(values):.1f} |"
        )
    print()
    print(
        f"| {n} instances, batches of {batch}, {size:.0f} MiB image, "
        f"{len(runs) // 2} upgrades per mode | pre-pull on | pre-pull off |"
    )
    print("|---|---|---|")
    by_mode = {mode: [r for r in runs if r["pre_pull"] == mode] for mode in (True, False)}
    every = {m: [v for r in rs for v in r["not_ready"].values()] for m, rs in by_mode.items()}
    starts = {m: [v for r in rs for v in r["start"].values()] for m, rs in by_mode.items()}
    first = {m: [v for r in rs for v in r["first_batch"]] for m, rs in by_mode.items()}
    rows = [
        ("not-ready per instance, median (s)", lambda m: statistics.median(every[m])),
        (
            "not-ready of the first batch's instances, median (s)",
            lambda m: statistics.median(first[m]),
        ),
        ("not-ready per instance, max (s)", lambda m: max(every[m])),
        ("new pod created → Ready, median (s)", lambda m: statistics.median(starts[m])),
        ("new pod created → Ready, max (s)", lambda m: max(starts[m])),
        ("upgrade, median (s)", lambda m: statistics.median(r["upgrade"] for r in by_mode[m])),
        (
            "first instance down after the patch, median (s)",
            lambda m: statistics.median(r["first_down"] for r in by_mode[m]),
        ),
    ]
    for label, value in rows:
        print(f"| {label} | {value(True):.1f} | {value(False):.1f} |")


if __name__ == "__main__":
    main()
