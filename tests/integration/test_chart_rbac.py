"""The chart's RBAC is sufficient and least: the operator runs as the chart's
ServiceAccount (a real token from the TokenRequest API), with peering on, and
replicates, creates instances with disks, upgrades and scales in; the same
identity is refused everything the operator does not do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, codecs
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Namespace, Node, Pod, Secret
from lightkube.types import PatchType

from galleon.api.crd import KINDS
from galleon.core import prepull
from galleon.kube.resources import ImageVersion, ScaleSet
from galleon_testkit.chart import of_kind, render
from galleon_testkit.fleets import FleetHarness
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import wait_for
from galleon_testkit.world import World

pytestmark = pytest.mark.integration
KopfPeering = create_namespaced_resource("kopf.dev", "v1", "KopfPeering", "kopfpeerings")


@pytest.fixture
def as_operator(chart_identity: Path) -> Client:
    return Client(KubeConfig.from_file(chart_identity), trust_env=False)


def test_the_operator_works_as_the_chart_service_account(
    control_plane: Any,
    kube: Client,
    namespace: str,
    registry_factory: Callable[[int], list[Registry]],
    operator_factory: Any,
    chart_identity: Path,
    tmp_path: Path,
) -> None:
    operator = operator_factory(
        namespaces=[namespace],
        extra=["--peering=galleon", "--priority=auto"],
        kubeconfig=chart_identity,
    )
    world = World(kube, namespace, registry_factory(4))
    fleet = FleetHarness.with_versions(world, tmp_path, control_plane.client, ("1.0.0", "1.0.2"))
    try:
        fleet.publish("1.0.0", [fleet.east, fleet.west])
        fleet.scaleset(
            "rbac",
            3,
            persistentVolumeClaimRetentionPolicy={"whenScaled": "Delete", "whenDeleted": "Delete"},
        )
        fleet.wait_fleet("rbac", "1.0.0", 3)
        assert len(fleet.claims("rbac")) == 3
        fleet.publish("1.0.2", [fleet.east])
        fleet.wait_upgrade("rbac", "Completed")
        wait_for(
            lambda: (
                not list(kube.list(Pod, namespace=namespace, labels={prepull.PULL_LABEL: "rbac"}))
            ),
            timeout=60,
            description="the upgrade's pull pods deleted (one delete of their collection)",
        )
        fleet.patch("rbac", {"spec": {"capacity": 2}})
        fleet.wait_fleet("rbac", "1.0.2", 2)
        wait_for(
            lambda: sorted(fleet.claims("rbac")) == ["data-rbac-0", "data-rbac-1"],
            timeout=30,
            description="scale-in deletes the removed instance's disk",
        )
        assert fleet.events("rbac", "RollingUpgradeCompleted")
        # Deleting a version in use is held; an unused one is deleted (finalizer removed).
        kube.delete(ImageVersion, "os-1-0-0", namespace=namespace)
        wait_for(
            lambda: (
                not any(
                    v.metadata.name == "os-1-0-0"
                    for v in kube.list(ImageVersion, namespace=namespace)
                )
            ),
            timeout=60,
            description="the unused version deleted by the operator",
        )
        assert kube.get(KopfPeering, "galleon", namespace=namespace)
        text = operator.log_text()
        assert "Forbidden" not in text and "forbidden" not in text, text[-3000:]
    finally:
        with contextlib.suppress(ApiError):
            kube.delete(ScaleSet, "rbac", namespace=namespace)
        world.cleanup()


@pytest.mark.parametrize(
    "action",
    [
        "list secrets",
        "list config maps",
        "delete a secret",
        "create a deployment",
        "patch a node",
        "patch a pod status",
        "delete an image version",
        "create an image template",
        "delete a scale set",
        "delete a namespace",
    ],
)
def test_what_the_operator_does_not_do_is_refused(
    as_operator: Client, kube: Client, namespace: str, action: str
) -> None:
    kube.create(
        Secret(metadata=ObjectMeta(name="token", namespace=namespace), stringData={"k": "v"})
    )
    node = next(iter(kube.list(Node))).metadata.name
    attempts: dict[str, Callable[[], Any]] = {
        "list secrets": lambda: list(as_operator.list(Secret, namespace=namespace)),
        "list config maps": lambda: list(as_operator.list(ConfigMap, namespace=namespace)),
        "delete a secret": lambda: as_operator.delete(Secret, "token", namespace=namespace),
        "create a deployment": lambda: as_operator.create(
            codecs.from_dict(
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": "x", "namespace": namespace},
                    "spec": {
                        "selector": {"matchLabels": {"a": "b"}},
                        "template": {
                            "metadata": {"labels": {"a": "b"}},
                            "spec": {"containers": [{"name": "c", "image": "i"}]},
                        },
                    },
                }
            )
        ),
        "patch a node": lambda: as_operator.patch(
            Node, node, {"metadata": {"labels": {"x": "y"}}}, patch_type=PatchType.MERGE
        ),
        "patch a pod status": lambda: as_operator.patch(
            Pod.Status,
            "any",
            {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        ),
        "delete an image version": lambda: as_operator.delete(
            ImageVersion, "any", namespace=namespace
        ),
        "create an image template": lambda: as_operator.create(
            codecs.from_dict(
                {
                    "apiVersion": "galleon.dev/v1alpha1",
                    "kind": "ImageTemplate",
                    "metadata": {"name": "x", "namespace": namespace},
                    "spec": {},
                }
            )
        ),
        "delete a scale set": lambda: as_operator.delete(ScaleSet, "any", namespace=namespace),
        "delete a namespace": lambda: as_operator.delete(Namespace, namespace),
    }
    with pytest.raises(ApiError) as refused:
        attempts[action]()
    assert refused.value.status.code == 403, refused.value.status
    # The admin still can (the refusal is RBAC, not a broken request).
    assert kube.get(Secret, "token", namespace=namespace)


def grants(role: dict[str, Any], resource: str, verb: str) -> bool:
    return any(
        "galleon.dev" in rule.get("apiGroups", [])
        and resource in rule.get("resources", [])
        and verb in rule.get("verbs", [])
        for rule in role["rules"]
    )


def test_the_operator_role_covers_every_kind_and_the_builders_writes() -> None:
    """Every kind of `KINDS` watched and patched, its status patched (never more; a
    ReplicationTask's status is its region agent's to write); the image builder
    creates and prunes ImageBuilds and creates the ImageVersions they publish; region
    agents' tasks are handed out and deleted; Secrets and ConfigMaps are read one by
    one, never listed."""
    role = next(d for d in of_kind(render(), "ClusterRole") if d["metadata"]["name"] == "galleon")
    for kind in KINDS:
        for verb in ("get", "list", "watch", "patch"):
            assert grants(role, kind.plural, verb), (kind.plural, verb)
        agents = kind.plural == "replicationtasks"
        assert grants(role, f"{kind.plural}/status", "patch") != agents, kind.plural
        assert not grants(role, f"{kind.plural}/status", "update"), kind.plural
    written = {
        (resource, verb)
        for rule in role["rules"]
        if "galleon.dev" in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        if verb in ("create", "delete", "update")
    }
    assert written == {
        ("imagebuilds", "create"),
        ("imagebuilds", "delete"),
        ("imageversions", "create"),
        ("replicationtasks", "create"),
        ("replicationtasks", "delete"),
        ("scalesets/finalizers", "update"),
    }
    core = [r for r in role["rules"] if r["apiGroups"] == [""]]
    read = next(r for r in core if "secrets" in r["resources"])
    assert sorted(read["resources"]) == ["configmaps", "secrets"]
    assert read["verbs"] == ["get"]
