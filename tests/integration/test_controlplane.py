"""The local control plane is a real one: admission, scheduling, kwok readiness, GC, PVCs.

These tests are the proof that the harness every other integration test stands on
behaves like a cluster: the real kube-apiserver refuses bad galleon objects with
the CEL/schema message, the scheduler honours region node selectors, kwok's stages
make pods Ready (or never Ready, or Ready late), KCM garbage-collects dependents
and binds claims.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import (
    ConfigMap,
    Node,
    PersistentVolume,
    PersistentVolumeClaim,
    Pod,
)
from lightkube.types import PatchType

from galleon.kube.resources import ImageVersion, ScaleSet
from galleon_testkit.binaries import REPO_ROOT
from galleon_testkit.controlplane import KWOK_DELETES_MESSAGE, KWOK_USER, ControlPlane
from galleon_testkit.nodes import REGION_LABEL
from galleon_testkit.waiting import stays_true, wait_for

pytestmark = pytest.mark.integration
EXAMPLES = REPO_ROOT / "examples"


def example_documents() -> list[dict[str, Any]]:
    documents = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        documents.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return documents


def pod(name: str, region: str, **extra_metadata: Any) -> Pod:
    return Pod.from_dict(
        {
            "metadata": {"name": name, **extra_metadata},
            "spec": {
                "nodeSelector": {REGION_LABEL: region},
                "containers": [{"name": "os", "image": "127.0.0.1:5301/x/os:1.0.0"}],
            },
        }
    )


def is_ready(p: Pod) -> bool:
    conditions = (p.status.conditions or []) if p.status else []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def test_startup_is_recorded(control_plane: ControlPlane) -> None:
    seconds = control_plane.startup_seconds
    assert {"etcd", "kube-apiserver", "kube-scheduler", "kwok", "total"} <= set(seconds)
    assert 0 < seconds["total"] < 120
    print(f"control plane start-up: {control_plane.summary()}")


def test_fake_nodes_carry_region_labels(kube: Client) -> None:
    regions = {node.metadata.labels[REGION_LABEL] for node in kube.list(Node)}
    assert {"westcentralus", "southcentralus", "eastus2"} <= regions


def test_every_example_is_accepted_by_the_apiserver(kube: Client) -> None:
    documents = example_documents()
    kinds = {d["kind"] for d in documents}
    assert {"Region", "Gallery", "ImageDefinition", "ImageVersion", "ScaleSet"} <= kinds
    for document in documents:
        resource = codecs.from_dict(document)
        if document["kind"] == "Namespace":
            kube.apply(resource, force=True)
            continue
        # Server-side dry run: full admission (schema, CEL, defaults), nothing stored.
        result = kube.apply(resource, force=True, dry_run=True)
        assert result.metadata.name == document["metadata"]["name"]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("spec", "version"), "1.0", "spec.version"),
        (("spec", "version"), "01.0.0", "MAJOR.MINOR.PATCH"),
        (("spec", "publishingProfile", "replicaCount"), 0, "replicaCount"),
        (
            ("spec", "publishingProfile", "targetRegions", 0, "regionalReplicaCount"),
            0,
            "regionalReplicaCount",
        ),
    ],
)
def test_bad_image_versions_are_refused(
    kube: Client, namespace: str, path: tuple[Any, ...], value: Any, message: str
) -> None:
    document = next(d for d in example_documents() if d["kind"] == "ImageVersion")
    document["metadata"] = {"name": "bad", "namespace": namespace}
    target: Any = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ApiError) as refused:
        kube.create(codecs.from_dict(document))
    assert refused.value.status.code == 422
    assert message in refused.value.status.message


def test_out_of_range_percent_and_bad_duration_are_refused(kube: Client, namespace: str) -> None:
    document = next(d for d in example_documents() if d["kind"] == "ScaleSet")
    document["metadata"] = {"name": "bad", "namespace": namespace}
    rolling = document["spec"]["upgradePolicy"].setdefault("rollingUpgradePolicy", {})
    for field, value, message in [
        ("maxBatchInstancePercent", 101, "maxBatchInstancePercent"),
        ("maxUnhealthyInstancePercent", 2, "maxUnhealthyInstancePercent"),
        ("pauseTimeBetweenBatches", "5 minutes", "pauseTimeBetweenBatches"),
    ]:
        candidate = {**rolling, field: value}
        document["spec"]["upgradePolicy"]["rollingUpgradePolicy"] = candidate
        with pytest.raises(ApiError) as refused:
            kube.create(codecs.from_dict(document))
        assert refused.value.status.code == 422, field
        assert message in refused.value.status.message, refused.value.status.message


def test_immutable_fields_cannot_change(kube: Client, namespace: str) -> None:
    document = next(d for d in example_documents() if d["kind"] == "ImageVersion")
    document["metadata"] = {"name": "pinned", "namespace": namespace}
    kube.create(codecs.from_dict(document))
    for field, value in [
        ("version", "9.9.9"),
        ("imageDefinitionName", "other"),
        ("source", {"image": "127.0.0.1:5101/sources/other:1.0.0"}),
    ]:
        with pytest.raises(ApiError) as refused:
            kube.patch(
                ImageVersion,
                "pinned",
                {"spec": {field: value}},
                namespace=namespace,
                patch_type=PatchType.MERGE,
            )
        assert refused.value.status.code == 422
        assert "immutable" in refused.value.status.message, refused.value.status.message
    scaleset = next(d for d in example_documents() if d["kind"] == "ScaleSet")
    scaleset["metadata"] = {"name": "fleet", "namespace": namespace}
    kube.create(codecs.from_dict(scaleset))
    with pytest.raises(ApiError) as refused:
        kube.patch(
            ScaleSet,
            "fleet",
            {"spec": {"region": "westcentralus"}},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )
    assert "immutable" in refused.value.status.message


def test_pod_lands_in_its_region_and_becomes_ready(kube: Client, namespace: str) -> None:
    kube.create(pod("ready", "eastus2"), namespace=namespace)

    def ready_pod() -> Pod | None:
        found = kube.get(Pod, "ready", namespace=namespace)
        return found if is_ready(found) else None

    ready = wait_for(
        ready_pod,
        timeout=30,
        description="pod to be Ready",
    )
    node = kube.get(Node, ready.spec.nodeName)
    assert node.metadata.labels[REGION_LABEL] == "eastus2"
    assert ready.status.podIP


def test_kwok_deletes_a_pod_only_once_it_is_terminating(
    control_plane: ControlPlane, kube: Client, namespace: str, tmp_path: Path
) -> None:
    # A real kubelet deletes the pod (UID) it saw terminating; kwok's delete stage
    # deletes by name, so the harness's policy stops it from deleting a live pod.
    kube.create(pod("live", "eastus2"), namespace=namespace)
    wait_for(
        lambda: is_ready(kube.get(Pod, "live", namespace=namespace)),
        timeout=30,
        description="pod to be Ready",
    )
    as_kwok = control_plane.client_for_user(KWOK_USER, tmp_path / "kwok.kubeconfig")
    try:
        with pytest.raises(ApiError) as refused:
            as_kwok.delete(Pod, "live", namespace=namespace)
        assert KWOK_DELETES_MESSAGE in refused.value.status.message
        assert kube.get(Pod, "live", namespace=namespace).metadata.deletionTimestamp is None
    finally:
        as_kwok.close()
    # Once terminating, kwok's own delete stage removes it, as a kubelet would.
    kube.delete(Pod, "live", namespace=namespace)
    wait_for(
        lambda: not list(kube.list(Pod, namespace=namespace, fields={"metadata.name": "live"})),
        timeout=30,
        description="the terminating pod to be deleted by kwok",
    )


def test_never_ready_pods_stay_unready(kube: Client, namespace: str) -> None:
    kube.create(
        pod("broken", "southcentralus", labels={"galleon.test/never-ready": "true"}),
        namespace=namespace,
    )
    kube.create(
        pod(
            "broken-image",
            "southcentralus",
            annotations={"galleon.test/never-ready-images": "127.0.0.1:5301/x/os:1.0.0"},
        ),
        namespace=namespace,
    )

    def running(name: str) -> bool:
        p = kube.get(Pod, name, namespace=namespace)
        return p.status is not None and p.status.phase == "Running"

    for name in ("broken", "broken-image"):
        wait_for(lambda name=name: running(name), timeout=30, description=f"{name} Running")
    stays_true(
        lambda: (
            not any(
                is_ready(kube.get(Pod, n, namespace=namespace)) for n in ("broken", "broken-image")
            )
        ),
        duration=5,
        description="never-ready pods stay unready",
    )


def test_ready_delay_holds_readiness_back(kube: Client, namespace: str) -> None:
    kube.create(
        pod("slow", "westcentralus", annotations={"galleon.test/ready-delay": "4s"}),
        namespace=namespace,
    )
    created = time.monotonic()
    wait_for(
        lambda: is_ready(kube.get(Pod, "slow", namespace=namespace)),
        timeout=30,
        description="delayed pod to become Ready",
    )
    # The delay counts from scheduling, in whole seconds: allow a second of rounding.
    assert time.monotonic() - created >= 3


def test_deleting_an_owner_garbage_collects_dependents(kube: Client, namespace: str) -> None:
    owner = kube.create(
        ConfigMap.from_dict({"metadata": {"name": "owner"}, "data": {}}), namespace=namespace
    )
    dependent = pod("dependent", "eastus2")
    dependent.metadata.ownerReferences = [  # type: ignore[union-attr]
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    ]
    kube.create(dependent, namespace=namespace)
    kube.delete(ConfigMap, "owner", namespace=namespace)

    def gone() -> bool:
        try:
            kube.get(Pod, "dependent", namespace=namespace)
        except ApiError as error:
            return error.status.code == 404
        return False

    wait_for(gone, timeout=60, description="the dependent pod to be garbage-collected")


def test_a_claim_binds_and_its_volume_is_reclaimed(kube: Client, namespace: str) -> None:
    claim = PersistentVolumeClaim.from_dict(
        {
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    )
    kube.create(claim, namespace=namespace)

    def bound_claim() -> PersistentVolumeClaim | None:
        found = kube.get(PersistentVolumeClaim, "data", namespace=namespace)
        return found if found.status and found.status.phase == "Bound" else None

    bound = wait_for(
        bound_claim,
        timeout=60,
        description="the claim to be Bound",
    )
    assert bound.spec.volumeName == f"pvc-{bound.metadata.uid}"
    kube.delete(PersistentVolumeClaim, "data", namespace=namespace)

    def reclaimed() -> bool:
        try:
            kube.get(PersistentVolume, bound.spec.volumeName)
        except ApiError as error:
            return error.status.code == 404
        return False

    wait_for(reclaimed, timeout=60, description="the released volume to be deleted")


def test_a_second_plane_reuses_cached_binaries(tmp_path: Path, control_plane: ControlPlane) -> None:
    """Two planes side by side on one machine: no shared port, both healthy, both stop."""
    with ControlPlane(tmp_path / "second", regions={"spare": 1}) as second:
        assert second.server != control_plane.server
        names = [n.metadata.name for n in second.client().list(Node)]
        assert names == ["kwok-spare-0"]
        pids = [p.pid for p in second._processes.values()]
    for pid in pids:
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
