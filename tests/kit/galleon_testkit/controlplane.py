"""A real Kubernetes control plane on 127.0.0.1, for integration tests and the local demo.

    with ControlPlane(tmp_path, regions={"westcentralus": 1, "eastus": 1}) as plane:
        client = plane.client()   # lightkube, admin (system:masters)
        plane.kubeconfig          # admin kubeconfig for the operator, kubectl, ...

Rules of this module:

- Start order: etcd -> kube-apiserver -> (kube-controller-manager, kube-scheduler,
  kwok launched together) -> fake nodes -> wait until the nodes are Ready and
  untainted. Stop order is the reverse. Every wait is bounded and a failure names
  the component and shows the tail of its log.
- Everything listens on 127.0.0.1, on ports picked at start; all state (PKI, etcd
  data, kubeconfig, logs) lives under `workdir`, which the caller owns.
- Only processes started here are ever signalled (see `processes`), and `stop()`
  is idempotent and also registered with `atexit`, so an interrupted session
  leaves no strays.
- Children get `HOME=<workdir>/home` and no `KUBECONFIG`: kwok auto-loads
  `~/.kwok/kwok.yaml`, and nothing here may touch the user's real cluster.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from lightkube import Client, codecs
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import ServiceAccount, ServiceAccountToken

from galleon.oci import RegistryClient
from galleon_testkit import nodes, pki
from galleon_testkit.binaries import Binaries, find_binaries, kubectl
from galleon_testkit.images import TestImage, push_image
from galleon_testkit.kubeconfig import write_kubeconfig
from galleon_testkit.osimages import build_pause_image
from galleon_testkit.processes import (
    LOOPBACK,
    ManagedProcess,
    ProcessFailed,
    free_port,
    http_ok,
    insecure_tls,
    log_tail,
    stop_all,
)
from galleon_testkit.realnode import (
    REAL_NODE_LABEL,
    RealNode,
    RealNodeUnavailable,
    missing_requirements,
)
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import wait_for

DEFAULT_REGIONS: Mapping[str, int] = {"westcentralus": 1, "eastus": 1}
STAGES_DIR = Path(__file__).parent / "stages"
#: Admission plugins on top of the apiserver's defaults (--enable-admission-plugins
#: adds to them). OwnerReferencesPermissionEnforcement is what hardened clusters run:
#: setting blockOwnerDeletion needs `update` on the owner's finalizers subresource.
EXTRA_ADMISSION_PLUGINS = ("OwnerReferencesPermissionEnforcement", "NodeRestriction")
#: Node first: kubelets of real nodes are authorized by the Node authorizer (their
#: own node, the pods bound to it and what those pods reference), everyone else by RBAC.
AUTHORIZATION_MODES = ("Node", "RBAC")
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"  # disjoint from the service range; never loopback
STORAGE_CLASS = "galleon-test-volume"
PROVISIONER = "galleon.test/fake-provisioner"
#: Local PersistentVolumes on the real nodes' disks (a static pool, see `RealNode`).
REAL_STORAGE_CLASS = "galleon-real-local"
REAL_VOLUMES_PER_NODE = 24
REAL_VOLUME_SIZE = "10Gi"
FIELD_MANAGER = "galleon-testing"

ETCD_TIMEOUT = 30.0
APISERVER_TIMEOUT = 120.0
COMPONENT_TIMEOUT = 90.0
NODES_TIMEOUT = 90.0


def real_storage_class() -> dict[str, Any]:
    """Local volumes of the real nodes: bound when a pod is scheduled, on its node."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": REAL_STORAGE_CLASS},
        "provisioner": "kubernetes.io/no-provisioner",
        "reclaimPolicy": "Retain",
        "volumeBindingMode": "WaitForFirstConsumer",
    }


def local_volume(node: RealNode, index: int) -> dict[str, Any]:
    """Local PersistentVolume `index` of a real node: a folder on its disk, only there."""
    path = node.volumes_dir / f"v{index}"
    path.mkdir(parents=True, exist_ok=True, mode=0o777)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"{node.name}-v{index}", "labels": {REAL_NODE_LABEL: node.name}},
        "spec": {
            "capacity": {"storage": REAL_VOLUME_SIZE},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": REAL_STORAGE_CLASS,
            "volumeMode": "Filesystem",
            "local": {"path": str(path)},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": nodes.HOSTNAME_LABEL,
                                    "operator": "In",
                                    "values": [node.name],
                                }
                            ]
                        }
                    ]
                }
            },
        },
    }


def _gone(client: Client, kind: Any, name: str) -> bool:
    try:
        client.get(kind, name)
    except ApiError as error:
        return error.status.code == 404
    return False


KWOK_USER = "galleon-test:kwok"
KWOK_DELETES_POLICY = "galleon-test-kwok-deletes-like-a-kubelet"
KWOK_DELETES_MESSAGE = (
    "kwok deletes only pods that are terminating, as a kubelet deletes only the pod (UID) "
    "it saw terminating"
)


def kwok_identity() -> list[dict[str, Any]]:
    """kwok's own user (cluster-admin through RBAC), and a policy that lets it delete a
    pod only once the pod is terminating.

    Why: kwok's delete stage deletes by name, without the UID precondition a real
    kubelet sends, so a stale delete of a terminated pod could remove the new pod a
    controller has just created under the same name (a StatefulSet's or a ScaleSet's,
    never a ReplicaSet's, whose names are random). With the policy the fake nodes
    behave as real ones do.
    """
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "galleon-test-kwok"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": KWOK_USER}
            ],
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": KWOK_DELETES_POLICY},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["DELETE"],
                            "resources": ["pods"],
                        }
                    ]
                },
                "matchConditions": [
                    {"name": "kwok", "expression": f"request.userInfo.username == '{KWOK_USER}'"}
                ],
                "validations": [
                    {
                        "expression": "has(oldObject.metadata.deletionTimestamp)",
                        "message": KWOK_DELETES_MESSAGE,
                    }
                ],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": KWOK_DELETES_POLICY},
            "spec": {"policyName": KWOK_DELETES_POLICY, "validationActions": ["Deny"]},
        },
    ]


class ControlPlaneError(RuntimeError):
    """The control plane could not be started (the message carries the failing log)."""


def storage_class() -> dict[str, Any]:
    """The default StorageClass whose claims the kwok volume stages provision."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": True,
    }


class ControlPlane:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok.

    Attributes (valid after `start()`):
        kubeconfig: admin kubeconfig (client certificate in group system:masters).
        server: the apiserver URL, e.g. "https://127.0.0.1:40123".
        startup_seconds: per component, seconds from launch until healthy; plus
            "nodes" (creation until usable) and "total" (the whole `start()`).
        logs: component name -> log file.
    """

    def __init__(
        self,
        workdir: Path,
        regions: Mapping[str, int] | None = None,
        *,
        binaries: Binaries | None = None,
        real_nodes: Mapping[str, int] | None = None,
        real_node_taint: bool = True,
        profiling: bool = False,
    ) -> None:
        self.workdir = Path(workdir)
        self.profiling = profiling
        """kube-apiserver serves /debug/pprof (benchmarks' profiles; off otherwise)."""
        self.regions = dict(DEFAULT_REGIONS if regions is None else regions)
        self.wanted_real_nodes = dict(real_nodes or {})
        self.real_node_taint = real_node_taint
        self.real_nodes: dict[str, RealNode] = {}
        self._node_images: Registry | None = None
        self._pause_image = ""
        self._binaries = binaries
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.server = ""
        self.startup_seconds: dict[str, float] = {}
        self.logs: dict[str, Path] = {}
        self.node_names: list[str] = []
        self._processes: dict[str, ManagedProcess] = {}
        self._pki: pki.Pki | None = None
        self._client: Client | None = None

    # -- lifecycle -----------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        """Start everything and wait until pods can be scheduled; stop it all on failure."""
        began = time.monotonic()
        atexit.register(self.stop)
        try:
            self._start()
        except Exception as error:
            self.stop()
            if isinstance(error, ProcessFailed | TimeoutError | AssertionError):
                raise ControlPlaneError(str(error)) from error
            raise
        self.startup_seconds["total"] = round(time.monotonic() - began, 2)
        return self

    def pid(self, component: str) -> int | None:
        """The PID of a running component ("kube-apiserver", "etcd", ...), else None."""
        process = self._processes.get(component)
        return process.pid if process is not None and process.running() else None

    def stop(self) -> None:
        """Stop the components in reverse order (idempotent)."""
        for node in reversed(list(self.real_nodes.values())):
            node.stop(self._client)
        if self._node_images is not None:
            self._node_images.stop()
        if self._client is not None:
            self._client.close()
            self._client = None
        controllers = [
            self._processes[name]
            for name in ("kwok", "kube-scheduler", "kube-controller-manager")
            if name in self._processes
        ]
        stop_all(controllers)
        for name in ("kube-apiserver", "etcd"):
            if name in self._processes:
                self._processes[name].stop()
        atexit.unregister(self.stop)

    def _start(self) -> None:
        binaries = self._binaries or find_binaries()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._pki = pki.generate(self.workdir / "pki")
        (self.workdir / "home").mkdir(exist_ok=True)

        etcd_port = self._start_etcd(binaries)
        self._start_apiserver(binaries, etcd_port)
        write_kubeconfig(
            self.kubeconfig,
            server=self.server,
            ca_cert=self._pki.ca_cert,
            client_cert=self._pki.admin_cert,
            client_key=self._pki.admin_key,
        )
        self._start_controllers(binaries)

        client = self.client()
        created = time.monotonic()
        client.apply(codecs.from_dict(storage_class()), field_manager=FIELD_MANAGER, force=True)
        client.apply(
            codecs.from_dict(real_storage_class()), field_manager=FIELD_MANAGER, force=True
        )
        self.node_names = nodes.create_nodes(client, self.regions)
        nodes.wait_nodes_usable(client, self.node_names, timeout=NODES_TIMEOUT)
        # Why: pods in a new namespace need its "default" ServiceAccount (KCM makes it).
        wait_for(
            lambda: client.get(ServiceAccount, "default", namespace="default"),
            timeout=COMPONENT_TIMEOUT,
            description="the default ServiceAccount (kube-controller-manager is working)",
        )
        self.startup_seconds["nodes"] = round(time.monotonic() - created, 2)
        for region, count in self.wanted_real_nodes.items():
            for _ in range(count):
                self.add_real_node(region, taint=self.real_node_taint)

    # -- real nodes ----------------------------------------------------------------------

    def add_real_node(
        self, region: str, *, taint: bool = True, timeout: float = NODES_TIMEOUT
    ) -> RealNode:
        """Start a real node (containerd + kubelet, `RealNode`) labelled for `region` and
        wait until it is Ready and untainted but for its own real-node taint.

        Its name is `real-<region>-<i>`; it comes with `REAL_VOLUMES_PER_NODE` local
        PersistentVolumes of the StorageClass `REAL_STORAGE_CLASS` on its disk.
        Raises `RealNodeUnavailable` when this machine cannot run one.
        """
        assert self._pki is not None
        missing = missing_requirements()
        if missing:
            raise RealNodeUnavailable("cannot run a real node: missing " + ", ".join(missing))
        binaries = self._binaries or find_binaries()
        index = sum(1 for n in self.real_nodes.values() if n.region == region)
        name = f"real-{region}-{index}"[:63]
        folder = self.workdir / "nodes" / name
        folder.mkdir(parents=True, exist_ok=True)
        cert, key = pki.user_certificate(
            self._pki, f"system:node:{name}", ("system:nodes",), folder=folder
        )
        kubeconfig = write_kubeconfig(
            folder / "kubelet.kubeconfig",
            server=self.server,
            ca_cert=self._pki.ca_cert,
            client_cert=cert,
            client_key=key,
            user=f"system:node:{name}",
        )
        node = RealNode(
            folder,
            name=name,
            region=region,
            kubelet=binaries.kubelet,
            kubeconfig=kubeconfig,
            ca_cert=self._pki.ca_cert,
            pause_image=self._pause(),
            labels={nodes.ZONE_LABEL: f"{region}-1"},
            taint=taint,
        )
        assert self._node_images is not None
        node.trust(self._node_images.host)
        self.real_nodes[name] = node
        began = time.monotonic()
        node.start()
        self.logs.update({f"{name}/{k}": v for k, v in node.logs.items()})
        client = self.client()
        nodes.wait_nodes_usable(client, [name], timeout=timeout)
        for volume in range(REAL_VOLUMES_PER_NODE):
            client.apply(
                codecs.from_dict(local_volume(node, volume)),
                field_manager=FIELD_MANAGER,
                force=True,
            )
        self.startup_seconds[name] = round(time.monotonic() - began, 2)
        return node

    def _pause(self) -> str:
        """The sandbox image on the plane's own registry (started with the first node)."""
        if not self._pause_image:
            self._node_images = Registry(self.workdir / "node-images", name="node-images").start()
            image = build_pause_image(self.workdir / "node-images" / "pause")
            digest = asyncio.run(self._push(self._node_images, "galleon-test/pause", image))
            self._pause_image = f"{self._node_images.host}/galleon-test/pause@{digest}"
        return self._pause_image

    @staticmethod
    async def _push(registry: Registry, repository: str, image: TestImage) -> str:
        async with RegistryClient(registry.url) as client:
            return await push_image(client, repository, image, ["1"])

    def recycle_real_volumes(self) -> int:
        """Give released local volumes back to the pool, emptied (what a static
        provisioner does); return how many."""
        from lightkube.resources.core_v1 import PersistentVolume

        client = self.client()
        recycled = 0
        for node in self.real_nodes.values():
            for volume in range(REAL_VOLUMES_PER_NODE):
                manifest = local_volume(node, volume)
                name = manifest["metadata"]["name"]
                try:
                    found = client.get(PersistentVolume, name)
                except ApiError as error:
                    if error.status.code != 404:
                        raise
                    found = None
                if found is not None:
                    if not (found.status and found.status.phase in ("Released", "Failed")):
                        continue
                    client.delete(PersistentVolume, name)
                    wait_for(
                        partial(_gone, client, PersistentVolume, name),
                        timeout=60,
                        description=f"volume {name} to be deleted",
                    )
                path = Path(manifest["spec"]["local"]["path"])
                shutil.rmtree(path, ignore_errors=True)
                path.mkdir(parents=True, mode=0o777)
                client.apply(codecs.from_dict(manifest), field_manager=FIELD_MANAGER, force=True)
                recycled += 1
        return recycled

    def leftovers(self) -> list[str]:
        """What the real nodes left behind after `stop()` (processes, mounts, links)."""
        return [
            f"{name}: {item}" for name, node in self.real_nodes.items() for item in node.leftovers()
        ]

    # -- components ------------------------------------------------------------------

    def _process(self, name: str, argv: Sequence[str | Path]) -> ManagedProcess:
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env["HOME"] = str(self.workdir / "home")
        log = self.workdir / "logs" / f"{name}.log"
        process = ManagedProcess(name, [str(a) for a in argv], log, env=env, cwd=self.workdir)
        self._processes[name] = process
        self.logs[name] = log
        process.start()
        return process

    def _start_etcd(self, binaries: Binaries) -> int:
        client_port, peer_port = free_port(), free_port()
        etcd = self._process(
            "etcd",
            [
                binaries.etcd,
                "--name=galleon",
                f"--data-dir={self.workdir / 'etcd-data'}",
                f"--listen-client-urls=http://{LOOPBACK}:{client_port}",
                f"--advertise-client-urls=http://{LOOPBACK}:{client_port}",
                f"--listen-peer-urls=http://{LOOPBACK}:{peer_port}",
                f"--initial-advertise-peer-urls=http://{LOOPBACK}:{peer_port}",
                f"--initial-cluster=galleon=http://{LOOPBACK}:{peer_port}",
                "--unsafe-no-fsync",  # test data; saves the disk, not the CPU
                "--logger=zap",
                "--log-level=warn",
            ],
        )
        url = f"http://{LOOPBACK}:{client_port}/health"
        self.startup_seconds["etcd"] = round(
            etcd.wait_until(lambda: http_ok(url, expect=b'"health":"true"'), timeout=ETCD_TIMEOUT),
            2,
        )
        return client_port

    def _start_apiserver(self, binaries: Binaries, etcd_port: int) -> None:
        assert self._pki is not None
        port = free_port()
        self.server = f"https://{LOOPBACK}:{port}"
        keys = self._pki
        apiserver = self._process(
            "kube-apiserver",
            [
                binaries.kube_apiserver,
                f"--etcd-servers=http://{LOOPBACK}:{etcd_port}",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={port}",
                f"--tls-cert-file={keys.apiserver_cert}",
                f"--tls-private-key-file={keys.apiserver_key}",
                f"--client-ca-file={keys.ca_cert}",
                f"--service-account-issuer={self.server}",
                f"--service-account-key-file={keys.service_account_public_key}",
                f"--service-account-signing-key-file={keys.service_account_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--authorization-mode={','.join(AUTHORIZATION_MODES)}",
                f"--enable-admission-plugins={','.join(EXTRA_ADMISSION_PLUGINS)}",
                "--allow-privileged=true",
                # Logs and exec go to a real node's kubelet: it knows the admin by the
                # plane's CA, and is reached on the address it reports (127.0.0.1).
                f"--kubelet-client-certificate={keys.admin_cert}",
                f"--kubelet-client-key={keys.admin_key}",
                "--kubelet-preferred-address-types=InternalIP",
                f"--profiling={'true' if self.profiling else 'false'}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
            ],
        )
        context = ssl.create_default_context(cafile=str(keys.ca_cert))
        context.load_cert_chain(str(keys.admin_cert), str(keys.admin_key))
        self.startup_seconds["kube-apiserver"] = round(
            apiserver.wait_until(
                lambda: http_ok(f"{self.server}/readyz", context=context, expect=b"ok"),
                timeout=APISERVER_TIMEOUT,
                interval=0.5,
            ),
            2,
        )

    def _start_controllers(self, binaries: Binaries) -> None:
        """Launch KCM, the scheduler and kwok together, then wait for each to be healthy."""
        assert self._pki is not None
        kcm_port, scheduler_port, kwok_port = free_port(), free_port(), free_port()
        common = [f"--kubeconfig={self.kubeconfig}", "--leader-elect=false"]
        kcm = self._process(
            "kube-controller-manager",
            [
                binaries.kube_controller_manager,
                *common,
                f"--bind-address={LOOPBACK}",
                f"--secure-port={kcm_port}",
                f"--cert-dir={self.workdir / 'kcm-certs'}",
                "--controllers=*",
                f"--root-ca-file={self._pki.ca_cert}",
                f"--service-account-private-key-file={self._pki.service_account_key}",
                "--kube-api-qps=100",
                "--kube-api-burst=200",
            ],
        )
        scheduler = self._process(
            "kube-scheduler",
            [
                binaries.kube_scheduler,
                *common,
                f"--bind-address={LOOPBACK}",
                f"--secure-port={scheduler_port}",
                f"--cert-dir={self.workdir / 'scheduler-certs'}",
            ],
        )
        kwok = self._process(
            "kwok",
            [
                binaries.kwok,
                f"--kubeconfig={self._kwok_kubeconfig()}",
                *(f"--config={path}" for path in sorted(STAGES_DIR.glob("*.yaml"))),
                # Only the fake nodes: a real node's kubelet runs its own.
                f"--manage-nodes-with-label-selector={nodes.FAKE_NODE_LABEL}=true",
                "--node-lease-duration-seconds=40",
                f"--cidr={POD_CIDR}",
                f"--server-address={LOOPBACK}:{kwok_port}",
                # Node addresses point at kwok itself: nothing else is ever dialled.
                f"--node-ip={LOOPBACK}",
                f"--node-port={kwok_port}",
            ],
        )
        tls = insecure_tls()
        checks = {
            kcm: f"https://{LOOPBACK}:{kcm_port}/healthz",
            scheduler: f"https://{LOOPBACK}:{scheduler_port}/healthz",
            kwok: f"http://{LOOPBACK}:{kwok_port}/healthz",
        }
        for process, url in checks.items():
            context = tls if url.startswith("https") else None
            self.startup_seconds[process.name] = round(
                process.wait_until(
                    partial(http_ok, url, context=context), timeout=COMPONENT_TIMEOUT
                ),
                2,
            )

    def _kwok_kubeconfig(self) -> Path:
        """kwok's identity (`kwok_identity`), applied before kwok starts."""
        assert self._pki is not None
        client = self.client()
        for document in kwok_identity():
            client.apply(codecs.from_dict(document), field_manager=FIELD_MANAGER, force=True)
        return self.kubeconfig_for_user(KWOK_USER, self.workdir / "kwok" / "kwok.kubeconfig")

    # -- helpers for tests -------------------------------------------------------------

    def client(self) -> Client:
        """A lightkube client with admin rights (one per control plane, reused)."""
        if self._client is None:
            self._client = Client(
                KubeConfig.from_file(self.kubeconfig),
                field_manager=FIELD_MANAGER,
                trust_env=False,
            )
        return self._client

    def requests_served(self) -> dict[tuple[str, str, str], float]:
        """Requests kube-apiserver has served so far, watches excluded, by (verb,
        resource, code), from its own `apiserver_request_total` (every client's).
        Compare two readings: e.g. a 409 of PATCH imageversions is a write refused on
        its resourceVersion precondition."""
        from prometheus_client.parser import text_string_to_metric_families

        text = subprocess.run(
            [str(kubectl()), f"--kubeconfig={self.kubeconfig}", "get", "--raw", "/metrics"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        served: dict[tuple[str, str, str], float] = {}
        for family in text_string_to_metric_families(text):
            if family.name != "apiserver_request":
                continue
            for sample in family.samples:
                labels = sample.labels
                if sample.name.endswith("_total") and labels.get("verb") != "WATCH":
                    key = (
                        labels.get("verb", ""),
                        labels.get("resource", ""),
                        labels.get("code", ""),
                    )
                    served[key] = served.get(key, 0.0) + sample.value
        return served

    def apply_crds(self, folder: Path, *, timeout: float = 60.0) -> list[str]:
        """Server-side apply every YAML document in `folder`; wait until CRDs are Established.

        Returns the names of the CRDs applied. Example: `plane.apply_crds(repo / "crds")`.
        """
        client = self.client()
        crds: list[str] = []
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            with path.open() as stream:
                for resource in codecs.load_all_yaml(stream):
                    client.apply(resource, field_manager=FIELD_MANAGER, force=True)
                    if isinstance(resource, CustomResourceDefinition):
                        assert resource.metadata is not None and resource.metadata.name
                        crds.append(resource.metadata.name)

        def established(name: str) -> bool:
            crd = client.get(CustomResourceDefinition, name)
            conditions = (crd.status.conditions or []) if crd.status else []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        for name in crds:
            wait_for(
                partial(established, name),
                timeout=timeout,
                description=f"CRD {name} to be Established",
            )
        return crds

    def api_token_for_service_account(
        self, namespace: str, name: str, *, expiration_seconds: int = 3600
    ) -> str:
        """A bound token for a ServiceAccount (TokenRequest API), e.g. to test RBAC."""
        request = ServiceAccountToken(
            metadata=ObjectMeta(name=name, namespace=namespace),
            spec=TokenRequestSpec(audiences=[], expirationSeconds=expiration_seconds),
        )
        issued = self.client().create(request, name, namespace=namespace)
        assert issued.status is not None
        return str(issued.status.token)

    def kubeconfig_for_service_account(self, namespace: str, name: str, path: Path) -> Path:
        """Write a kubeconfig that acts as ServiceAccount `namespace/name`."""
        assert self._pki is not None
        return write_kubeconfig(
            path,
            server=self.server,
            ca_cert=self._pki.ca_cert,
            token=self.api_token_for_service_account(namespace, name),
            user=f"system:serviceaccount:{namespace}:{name}",
            namespace=namespace,
        )

    def kubeconfig_for_user(
        self, user: str, path: Path, *, groups: tuple[str, ...] = (), namespace: str | None = None
    ) -> Path:
        """Write a kubeconfig that acts as `user` in `groups` (a client certificate signed
        by the plane's CA; never system:masters), e.g. a tenant in RBAC tests.

        Example: `plane.kubeconfig_for_user("alice", tmp / "alice.kubeconfig",
        groups=("team-b",))`; the apiserver authenticates her as user "alice".
        """
        assert self._pki is not None
        cert, key = pki.user_certificate(self._pki, user, groups, folder=path.parent)
        return write_kubeconfig(
            path,
            server=self.server,
            ca_cert=self._pki.ca_cert,
            client_cert=cert,
            client_key=key,
            user=user,
            namespace=namespace,
        )

    def client_for_user(self, user: str, path: Path, *, groups: tuple[str, ...] = ()) -> Client:
        """A lightkube client acting as `user` (see `kubeconfig_for_user`); the caller closes it."""
        kubeconfig = self.kubeconfig_for_user(user, path, groups=groups)
        return Client(
            KubeConfig.from_file(kubeconfig), field_manager=FIELD_MANAGER, trust_env=False
        )

    def log_tails(self, lines: int = 20) -> str:
        """The last lines of every component log, for failure reports."""
        parts = [
            f"--- {name} ({path})\n{log_tail(path, lines)}" for name, path in self.logs.items()
        ]
        return "\n".join(parts)

    def summary(self) -> str:
        """Example: "etcd 0.6s, kube-apiserver 7.9s, ..., total 15.2s"."""
        return ", ".join(f"{name} {seconds:.1f}s" for name, seconds in self.startup_seconds.items())


def decode_kubeconfig_ca(kubeconfig: Path) -> bytes:
    """The CA certificate (PEM) embedded in a kubeconfig written by this package."""
    config = yaml.safe_load(kubeconfig.read_text())
    return base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"])
