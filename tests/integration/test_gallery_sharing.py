"""A gallery shared across namespaces, end to end: the publishing team's namespace
holds the Gallery, ImageDefinition and versions; a ScaleSet in a consuming namespace
follows that image only while the Gallery's sharingProfile shares it, keeps its
instances when sharing is revoked, and holds the version's deletion while it runs it.

The real operator, running as the chart's ServiceAccount with the chart's RBAC, on
the real apiserver (OwnerReferencesPermissionEnforcement and galleon's admission
policy on), kwok nodes and registries. The consuming team is a tenant user holding
only the built-in `edit` in its namespace (galleon-edit aggregated) and
`galleon-image-user` in the publishing one; the publishing team's side is applied
by the cluster admin.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace
from lightkube.types import PatchType

from galleon.kube.resources import Gallery, ImageDefinition, ImageVersion, ScaleSet
from galleon_testkit.fleets import FleetHarness
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import stays_true, wait_for
from galleon_testkit.world import World

pytestmark = pytest.mark.integration


@pytest.fixture
def consumer_namespace(kube: Client, namespace: str) -> Iterator[str]:
    """The consuming team's namespace (labelled, for selector sharing)."""
    name = f"{namespace}-use"[:63]
    kube.create(Namespace(metadata=ObjectMeta(name=name, labels={"galleon.test/team": "web"})))
    yield name
    for s in kube.list(ScaleSet, namespace=name):
        with contextlib.suppress(ApiError):
            kube.delete(ScaleSet, s.metadata.name, namespace=name)
    with contextlib.suppress(ApiError):
        kube.delete(Namespace, name)


@pytest.fixture
def publisher(
    control_plane: Any,
    kube: Client,
    namespace: str,
    consumer_namespace: str,
    registry_factory: Callable[[int], list[Registry]],
    operator_factory: Any,
    chart_identity: Path,
    tmp_path: Path,
) -> Iterator[FleetHarness]:
    """The publishing team's namespace, with 1.0.0 replicated; one operator, as the
    chart's ServiceAccount, watches both namespaces."""
    operator_factory(namespaces=[namespace, consumer_namespace], kubeconfig=chart_identity)
    world = World(kube, namespace, registry_factory(4))
    made = FleetHarness.with_versions(world, tmp_path, control_plane.client)
    made.publish("1.0.0", [made.east, made.west])
    yield made
    world.cleanup()


def bind(kube: Client, namespace: str, role: str, user: str) -> None:
    kube.create(
        codecs.from_dict(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": f"{role}-{user}"[:63], "namespace": namespace},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role,
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
                ],
            }
        )
    )


@pytest.fixture
def consumer(
    control_plane: Any,
    kube: Client,
    publisher: FleetHarness,
    consumer_namespace: str,
    tmp_path: Path,
) -> Iterator[FleetHarness]:
    """The same harness, acting in the consuming namespace as its team: a user with
    `edit` there and `use` on the publisher's definitions."""
    user = f"team-{consumer_namespace}"[:63]
    bind(kube, consumer_namespace, "edit", user)
    bind(kube, publisher.namespace, "galleon-image-user", user)
    tenant = control_plane.client_for_user(user, tmp_path / "tenant.kubeconfig")
    other = copy.copy(publisher)
    other.namespace, other.kube = consumer_namespace, tenant

    def may_list() -> bool:
        try:
            list(tenant.list(ScaleSet, namespace=consumer_namespace))
        except ApiError:
            return False  # the aggregated role or the binding is not in effect yet
        return True

    wait_for(may_list, timeout=60, description="the tenant's edit role in effect")
    yield other
    tenant.close()


def share(kube: Client, namespace: str, profile: dict[str, Any]) -> None:
    kube.patch(
        Gallery,
        "gallery",
        {"spec": {"sharingProfile": profile}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def not_shared(fleet: FleetHarness, name: str) -> bool:
    status = fleet.status(name)
    return (
        condition(status, "Stalled").get("status") == "True"
        and condition(status, "Ready").get("reason") == "ImageNotShared"
    )


def test_a_shared_image_is_deployed_in_another_namespace_and_kept_when_revoked(
    kube: Client, publisher: FleetHarness, consumer: FleetHarness
) -> None:
    source = publisher.namespace
    reference = {"imageDefinitionName": "os", "namespace": source, "version": "latest"}
    consumer.scaleset("web", 3, imageReference=reference)

    # Private (the default): said plainly, nothing created.
    wait_for(lambda: not_shared(consumer, "web"), timeout=60, description="ImageNotShared")
    message = condition(consumer.status("web"), "Ready")["message"]
    assert f"{source}/os" in message and f"namespace {consumer.namespace}" in message
    assert consumer.pods("web") == []

    # Shared with the namespace by name: it deploys by itself, from the publisher's copies.
    share(kube, source, {"permissions": "Namespaces", "namespaces": [consumer.namespace]})
    consumer.wait_fleet("web", "1.0.0", 3)
    images = {p.spec.containers[0].image for p in consumer.pods("web")}
    assert all(f"/galleon/{source}/gallery/os@{publisher.digest('1.0.0')}" in i for i in images)
    definition = kube.get(ImageDefinition, "os", namespace=source)
    wait_for(
        lambda: (
            (kube.get(ImageDefinition, "os", namespace=source).get("status") or {}).get(
                "usedByNamespaces"
            )
            == [consumer.namespace]
        ),
        timeout=60,
        description="the definition lists its consuming namespace",
    )
    assert definition is not None

    # Revoked: the instances stay, and a newer version is not rolled out.
    uids = {p.metadata.uid for p in consumer.pods("web")}
    share(kube, source, {"permissions": "Private", "namespaces": []})
    wait_for(lambda: not_shared(consumer, "web"), timeout=60, description="revocation seen")
    publisher.publish("1.0.2", [publisher.east])
    stays_true(
        lambda: {p.metadata.uid for p in consumer.pods("web")} == uids,
        duration=10,
        description="revoked: instances kept, nothing upgraded",
    )

    # Shared again by a label selector: the fleet catches up to 1.0.2 by itself.
    share(
        kube,
        source,
        {
            "permissions": "Namespaces",
            "namespaces": [],
            "namespaceSelector": {"matchLabels": {"galleon.test/team": "web"}},
        },
    )
    consumer.wait_fleet("web", "1.0.2", 3, timeout=120)

    # Deleting the version another namespace runs is held.
    kube.delete(ImageVersion, "os-1-0-2", namespace=source)

    def held() -> bool:
        status = publisher.world.status("os-1-0-2")
        return condition(status, "DeletionHeld").get("reason") == "InUse"

    wait_for(held, timeout=60, description="deletion held while another namespace runs it")
    message = condition(publisher.world.status("os-1-0-2"), "DeletionHeld")["message"]
    assert f"{consumer.namespace}/web" in message


def test_a_sharing_profile_that_says_nothing_coherent_is_refused(
    kube: Client, publisher: FleetHarness
) -> None:
    document = {
        "apiVersion": "galleon.dev/v1alpha1",
        "kind": "Gallery",
        "metadata": {"name": "incoherent", "namespace": publisher.namespace},
        "spec": {
            "location": publisher.west,
            "sharingProfile": {"permissions": "Private", "namespaces": ["other"]},
        },
    }
    with pytest.raises(ApiError, match="only used with permissions"):
        kube.create(codecs.from_dict(document))


@pytest.mark.parametrize(
    "profile",
    [
        pytest.param({}, id="empty"),
        pytest.param({"permissions": "Private"}, id="private-alone"),
        pytest.param({"permissions": "Cluster"}, id="cluster-alone"),
        pytest.param({"permissions": "Namespaces", "namespaces": ["b"]}, id="names-only"),
        pytest.param(
            {
                "permissions": "Namespaces",
                "namespaceSelector": {"matchExpressions": [{"key": "t", "operator": "Exists"}]},
            },
            id="selector-only-exists-without-values",
        ),
    ],
)
def test_partial_sharing_profiles_are_admitted(
    kube: Client, namespace: str, profile: dict[str, Any]
) -> None:
    # Every CEL rule must hold on the object as written, without its fields' defaults.
    document = {
        "apiVersion": "galleon.dev/v1alpha1",
        "kind": "Gallery",
        "metadata": {"name": "partial", "namespace": namespace},
        "spec": {"location": "nowhere", "sharingProfile": profile},
    }
    kube.create(codecs.from_dict(document), dry_run=True)
