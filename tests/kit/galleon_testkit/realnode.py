"""A real node beside kwok's simulated ones: containerd + runc + CNI bridge + kubelet,
all started by this harness, all state under one work folder.

    node = RealNode(workdir, name="real-eastus2-0", region="eastus2", kubelet=bins.kubelet,
                    kubeconfig=node_kubeconfig, pause_image="127.0.0.1:5000/pause@sha256:...")
    node.trust("127.0.0.1:5000")      # a plain-HTTP registry containerd may pull from
    node.start()                      # returns once containerd answers and kubelet runs
    ...
    node.stop()                       # pods, kubelet, containers, shims, containerd, mounts, bridge
    assert node.leftovers() == []

Rules of this module (what was learnt on this kind of machine, docs/control-plane.md):

- Every containerd has its own config, root, state and socket; nothing uses
  `/run/containerd` or `/var/lib/containerd`. `restrict_oom_score_adj` is on: without
  CAP_SYS_RESOURCE runc cannot lower `oom_score_adj` below the caller's, and every
  sandbox would fail with "can't get final child's PID from pipe: EOF".
- Registries are trusted one by one through containerd's hosts directory
  (`config_path`), which containerd reads on every pull, so registries started after
  the node are trusted by writing one file (`trust`).
- Each node has its own bridge (a name and a /24 nobody else on this machine uses),
  created here with the gateway address 10.88.N.1, which is also the node's IP: kubelet
  refuses a loopback node IP (and then reports no address at all, so the apiserver
  cannot reach it for logs); its own host-local IPAM folder; the bridge is deleted
  at stop.
- kubelet is a proper node: a client certificate for `system:node:<name>` (group
  `system:nodes`), checked by the apiserver's Node authorizer and NodeRestriction;
  it listens on the node's bridge address (its health port on 127.0.0.1), on ports
  picked at start, authenticates the apiserver by the
  plane's CA and authorizes it by webhook; its node carries the taint `TAINT_KEY`
  (unless `taint=False`, as in the demo), so only pods that tolerate it (the real-node
  tier's) run there, never the kwok tier's.
- Stop order: the node's pods are deleted while kubelet still runs; then kubelet
  stops; whatever containers remain are killed through this containerd's own socket,
  and any process that names that socket (its shims) is killed by PID; containerd
  stops; every mount under the work folder, and every network namespace this node's
  sandboxes used, is unmounted; the bridge is deleted. Only what this node started is
  ever signalled or removed. `leftovers()` lists anything that survived.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from galleon_testkit.processes import LOOPBACK, ManagedProcess, free_port, http_ok
from galleon_testkit.waiting import wait_for

CNI_BIN_DIR = Path("/usr/lib/cni")
PACKAGES = {  # what a real node needs, and the Debian package that brings it
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    str(CNI_BIN_DIR / "bridge"): "containernetworking-plugins",
    str(CNI_BIN_DIR / "host-local"): "containernetworking-plugins",
    str(CNI_BIN_DIR / "loopback"): "containernetworking-plugins",
    "ip": "iproute2",
}
REAL_NODE_LABEL = "galleon.test/real-node"
TAINT_KEY = "galleon.test/real-node"
TOLERATION = {"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
SUBNET_PREFIX = "10.88"
START_TIMEOUT = 60.0
DRAIN_TIMEOUT = 90.0
_MNT_DETACH = 2


class RealNodeUnavailable(RuntimeError):
    """This machine cannot run a real node (a package is missing, or not root)."""


def missing_requirements() -> list[str]:
    """What is missing to run a real node here, e.g. ["runc (apt-get install runc)"]."""
    missing = []
    for tool, package in PACKAGES.items():
        found = Path(tool).is_file() if tool.startswith("/") else shutil.which(tool)
        if not found:
            missing.append(f"{tool} (apt-get install {package})")
    if os.geteuid() != 0:
        missing.append("root (containerd and kubelet need it)")
    return missing


def _run(*argv: str, timeout: float = 30.0, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=check)


def _links() -> set[str]:
    listed = _run("ip", "-o", "link", "show", check=False)
    return {line.split(":")[1].strip().split("@")[0] for line in listed.stdout.splitlines()}


def _used_subnets() -> set[str]:
    listed = _run("ip", "-o", "-4", "addr", "show", check=False)
    return set(re.findall(rf"inet ({re.escape(SUBNET_PREFIX)}\.\d+)\.\d+/", listed.stdout))


def _pick_subnet() -> str:
    """A 10.88.N.0/24 that no interface on this machine has an address in."""
    used = _used_subnets()
    for third in range(1, 255):
        if f"{SUBNET_PREFIX}.{third}" not in used:
            return f"{SUBNET_PREFIX}.{third}.0/24"
    raise RealNodeUnavailable(f"no free /24 left in {SUBNET_PREFIX}.0.0/16")


def mounts_under(*folders: Path) -> list[str]:
    """Mount points at or below any of `folders` (deepest first), from mountinfo."""
    prefixes = [str(f.resolve()) for f in folders]
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].replace("\\040", " ")
            if any(point == p or point.startswith(p + "/") for p in prefixes):
                found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def _unmount(point: str) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.umount2(point.encode(), _MNT_DETACH)


def processes_naming(text: str) -> list[int]:
    """PIDs of live processes whose command line contains `text` (e.g. our socket path)."""
    found = []
    needle = text.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is `pid` (from /proc/<child>/stat)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


class RealNode:
    """One real Kubernetes node on this machine (see the module docstring)."""

    def __init__(
        self,
        workdir: Path,
        *,
        name: str,
        region: str,
        kubelet: Path,
        kubeconfig: Path,
        ca_cert: Path,
        pause_image: str,
        labels: Mapping[str, str] | None = None,
        taint: bool = True,
    ) -> None:
        self.workdir = Path(workdir)
        self.taint = taint
        self.name = name
        self.region = region
        self.kubelet_binary = Path(kubelet)
        self.kubeconfig = Path(kubeconfig)
        self.ca_cert = Path(ca_cert)
        self.pause_image = pause_image
        self.labels = dict(labels or {})
        # Unix socket paths are limited to 107 bytes: containerd's sockets and kubelet's
        # root (which holds its own sockets, e.g. pod-resources/<random>) live in a
        # short folder of their own.
        self.sockets = Path(tempfile.mkdtemp(prefix="galleon-node-", dir="/tmp"))
        self.socket = self.sockets / "containerd.sock"
        self.bridge = "glnbr" + uuid.uuid4().hex[:8]
        self.subnet = ""
        self.kubelet_port = 0
        self.logs: dict[str, Path] = {}
        self.startup_seconds: dict[str, float] = {}
        self._containerd: ManagedProcess | None = None
        self._kubelet: ManagedProcess | None = None
        self._netns: set[str] = set()
        self._bridge_created = False

    # -- paths -----------------------------------------------------------------------

    @property
    def hosts_dir(self) -> Path:
        return self.workdir / "containerd" / "certs.d"

    @property
    def kubelet_root(self) -> Path:
        return self.sockets / "kubelet"

    @property
    def volumes_dir(self) -> Path:
        return self.workdir / "volumes"

    # -- configuration -----------------------------------------------------------------

    def trust(self, host: str) -> None:
        """Let containerd pull from the plain-HTTP registry at `host` ("127.0.0.1:5000")."""
        if not re.fullmatch(r"127\.0\.0\.1:\d{1,5}", host):
            raise ValueError(f"only loopback registries are trusted here, not {host!r}")
        folder = self.hosts_dir / host
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "hosts.toml").write_text(
            f'server = "http://{host}"\n\n'
            f'[host."http://{host}"]\n'
            '  capabilities = ["pull", "resolve"]\n'
        )

    def _write_containerd_config(self) -> Path:
        root = self.workdir / "containerd"
        cni_conf = self.workdir / "cni" / "conf"
        cni_conf.mkdir(parents=True, exist_ok=True)
        self.hosts_dir.mkdir(parents=True, exist_ok=True)
        conflist = {
            "cniVersion": "0.4.0",
            "name": f"galleon-{self.name}",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.subnet}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.workdir / "cni" / "ipam"),
                    },
                },
                {"type": "loopback"},
            ],
        }
        (cni_conf / "10-galleon.conflist").write_text(json.dumps(conflist, indent=2))
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config = f"""version = 2
root = "{root / "root"}"
state = "{root / "state"}"
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.sockets / "ttrpc.sock"}"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{root / "opt"}"
[{cri}]
  sandbox_image = "{self.pause_image}"
  restrict_oom_score_adj = true
  enable_cdi = false
  [{cri}.containerd]
    snapshotter = "overlayfs"
  [{cri}.cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cni_conf}"
    max_conf_num = 1
  [{cri}.registry]
    config_path = "{self.hosts_dir}"
"""
        path = root / "config.toml"
        path.write_text(config)
        return path

    def _write_kubelet_config(self) -> Path:
        port, healthz = free_port(), free_port()
        self.kubelet_port = port
        self._healthz = healthz
        config: dict[str, Any] = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,
            "failSwapOn": False,
            "cgroupsPerQOS": False,
            "enforceNodeAllocatable": [],
            "address": self.address,
            "port": port,
            "healthzBindAddress": LOOPBACK,
            "healthzPort": healthz,
            "readOnlyPort": 0,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.ca_cert)},
            },
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "imageServiceEndpoint": f"unix://{self.socket}",
            "evictionHard": {},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "localStorageCapacityIsolation": False,
            "serializeImagePulls": False,
            "registerWithTaints": (
                [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}] if self.taint else []
            ),
            "podLogsDir": str(self.workdir / "pod-logs"),
            "volumePluginDir": str(self.workdir / "volume-plugins"),
            "maxPods": 110,
            "resolvConf": "",
            "shutdownGracePeriod": "0s",
        }
        path = self.workdir / "kubelet-config.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> RealNode:
        missing = missing_requirements()
        if missing:
            raise RealNodeUnavailable("cannot run a real node: missing " + ", ".join(missing))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.volumes_dir.mkdir(exist_ok=True)
        self.subnet = _pick_subnet()
        began = time.monotonic()
        self._create_bridge()
        config = self._write_containerd_config()
        self._containerd = self._process(
            "containerd", ["containerd", "--config", str(config), "--log-level", "warn"]
        )
        self.startup_seconds["containerd"] = round(
            self._containerd.wait_until(self._containerd_answers, timeout=START_TIMEOUT), 2
        )
        kubelet_config = self._write_kubelet_config()
        labels = {REAL_NODE_LABEL: "true", "topology.kubernetes.io/region": self.region}
        labels.update(self.labels)
        self._kubelet = self._process(
            "kubelet",
            [
                str(self.kubelet_binary),
                f"--config={kubelet_config}",
                f"--kubeconfig={self.kubeconfig}",
                f"--root-dir={self.kubelet_root}",
                f"--cert-dir={self.workdir / 'kubelet-pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.address}",
                "--node-labels=" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
                "--v=1",
            ],
        )
        url = f"http://{LOOPBACK}:{self._healthz}/healthz"
        self.startup_seconds["kubelet"] = round(
            self._kubelet.wait_until(lambda: http_ok(url), timeout=START_TIMEOUT), 2
        )
        self.startup_seconds["node"] = round(time.monotonic() - began, 2)
        return self

    @property
    def address(self) -> str:
        """The node's IP: its bridge's gateway address (10.88.N.1), local to this machine."""
        return self.subnet.rsplit(".", 1)[0] + ".1"

    def _create_bridge(self) -> None:
        """The node's bridge, with the gateway address the CNI bridge plugin expects on it.

        kubelet refuses a loopback node IP (the node then has no address, and the
        apiserver cannot reach it for logs or exec), so the node's address is this one.
        """
        _run("ip", "link", "add", "name", self.bridge, "type", "bridge")
        self._bridge_created = True
        _run("ip", "addr", "add", f"{self.address}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")

    def _process(self, name: str, argv: list[str]) -> ManagedProcess:
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "CONTAINERD_ADDRESS")}
        env["PATH"] = f"/usr/sbin:/usr/bin:/sbin:/bin:{env.get('PATH', '')}"
        log = self.workdir / "logs" / f"{name}.log"
        process = ManagedProcess(f"{self.name}/{name}", argv, log, env=env, cwd=self.workdir)
        self.logs[name] = log
        process.start()
        return process

    def ctr(self, *argv: str, timeout: float = 30.0, check: bool = True) -> str:
        """Run `ctr` against this node's containerd (namespace k8s.io); return stdout."""
        done = _run(
            "ctr",
            "--address",
            str(self.socket),
            "--namespace",
            "k8s.io",
            *argv,
            timeout=timeout,
            check=check,
        )
        return done.stdout

    def _containerd_answers(self) -> bool:
        return self.socket.exists() and bool(
            _run("ctr", "--address", str(self.socket), "version", check=False).returncode == 0
        )

    def containers(self) -> list[str]:
        """IDs of this containerd's containers (sandboxes included)."""
        return self.ctr("containers", "list", "--quiet").split()

    def tasks(self) -> dict[str, int]:
        """Running tasks: container ID → PID."""
        listed = self.ctr("tasks", "list").splitlines()[1:]
        tasks = {}
        for line in listed:
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                tasks[fields[0]] = int(fields[1])
        return tasks

    def images(self) -> dict[str, str]:
        """What containerd holds: image reference → manifest digest."""
        found = {}
        for line in self.ctr("images", "list").splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 3:
                found[fields[0]] = fields[2]
        return found

    def _bridge_ports(self) -> dict[str, str]:
        """The host ends of the veths on this node's bridge → the name of the network
        namespace at their other end ("" when it has none in /var/run/netns). Every pod
        sandbox of the node has one, whatever containerd still knows about it."""
        listed = _run("ip", "-o", "link", "show", "master", self.bridge, check=False)
        ports = {}
        for line in listed.stdout.splitlines():
            name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
            if name:
                found = re.search(r"link-netns (\S+)", line)
                ports[name] = found.group(1) if found else ""
        return ports

    def _record_bridge_netns(self) -> None:
        if self._bridge_created:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                for namespace in self._bridge_ports().values():
                    if namespace:
                        self._netns.add(f"/var/run/netns/{namespace}")

    def _record_netns(self) -> None:
        """Remember the network namespaces this node's sandboxes use (to remove them):
        those containerd names, and those at the far end of the bridge's veths (a sandbox
        whose container record is already gone, e.g. removed by kubelet under load)."""
        self._record_bridge_netns()
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            for container in self.containers():
                info = json.loads(self.ctr("containers", "info", container, check=False) or "{}")
                spec = info.get("Spec") or {}
                for namespace in (spec.get("linux") or {}).get("namespaces") or []:
                    path = namespace.get("path") or ""
                    if namespace.get("type") == "network" and path.startswith("/var/run/netns/"):
                        self._netns.add(path)

    def drain(self, client: Any, timeout: float = DRAIN_TIMEOUT) -> None:
        """Cordon the node, delete every pod bound to it and wait (bounded) until its
        containers are gone; a controller that re-creates its pods cannot put them here
        again. Never raises: `stop` goes on with what is left."""
        from lightkube.resources.core_v1 import Node, Pod
        from lightkube.types import PatchType

        with contextlib.suppress(Exception):
            client.patch(
                Node, self.name, {"spec": {"unschedulable": True}}, patch_type=PatchType.MERGE
            )
        with contextlib.suppress(Exception):
            for pod in client.list(Pod, namespace="*", fields={"spec.nodeName": self.name}):
                with contextlib.suppress(Exception):
                    client.delete(
                        Pod, pod.metadata.name, namespace=pod.metadata.namespace, grace_period=0
                    )
        if self._containerd is None or not self._containerd.running():
            return
        self._record_netns()
        with contextlib.suppress(Exception):
            wait_for(
                lambda: not self.tasks(),
                timeout=timeout,
                description=f"node {self.name}'s containers to stop",
            )

    def stop(self, client: Any | None = None) -> None:
        """Tear everything down in the order the module docstring gives (idempotent;
        each step runs even when an earlier one failed)."""
        if client is not None and self._kubelet is not None and self._kubelet.running():
            self.drain(client)
        if self._kubelet is not None:
            self._kubelet.stop(grace=15)
        if self._containerd is not None and self._containerd.running():
            self._record_netns()
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                for container in self.tasks():
                    self.ctr("tasks", "kill", "--signal", "SIGKILL", container, check=False)
                for container in self.tasks():
                    self.ctr("tasks", "delete", "--force", container, check=False)
                for container in self.containers():
                    self.ctr("containers", "delete", container, check=False)
        self._kill_shims()
        if self._containerd is not None:
            self._containerd.stop(grace=15)
        self._kill_shims()  # shims outliving containerd
        self._record_bridge_netns()
        for port in self._bridge_ports() if self._bridge_created else {}:
            _run("ip", "link", "delete", port, check=False)
        for point in mounts_under(self.workdir, self.sockets):
            _unmount(point)
        for path in sorted(self._netns):
            # mountinfo names the resolved path (/run/netns/..., /var/run is a link).
            for point in mounts_under(Path(path)):
                _unmount(point)
            with contextlib.suppress(OSError):
                os.unlink(path)
        if self._bridge_created and self.bridge in _links():
            _run("ip", "link", "delete", self.bridge, check=False)
        shutil.rmtree(self.sockets, ignore_errors=True)

    def _kill_shims(self) -> None:
        """SIGKILL the processes that name this node's socket (its shims), each after its
        children (the containers' init processes, which would outlive a shim)."""
        for pid in processes_naming(str(self.socket)):
            if self._containerd is not None and pid == self._containerd.pid:
                continue
            for child in [*children_of(pid), pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)

    def leftovers(self) -> list[str]:
        """What of this node survived `stop()`: processes, mounts, namespaces, links."""
        found = [f"process {pid}" for pid in processes_naming(str(self.socket))]
        for process in (self._kubelet, self._containerd):
            if process is not None and process.running():
                found.append(f"{process.name} (pid {process.pid})")
        found += [f"mount {point}" for point in mounts_under(self.workdir, self.sockets)]
        found += [
            f"network namespace {path}" for path in sorted(self._netns) if os.path.exists(path)
        ]
        if self.bridge in _links():
            found.append(f"link {self.bridge}")
        return found
