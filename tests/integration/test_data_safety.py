"""Nothing lost, nothing mixed: copies that something pulls stay, disks stay with
their fleet, what the apiserver refuses is said. The real operator, the real
apiserver (kwok nodes), real registries.

Each test builds its world as `test_scaleset_rollout` does: a region `east` with two
registry replicas (eastus2 nodes), a region `west` with one, versions 1.0.0 / 1.0.2 /
1.0.3 of one image in a source registry, 1.0.0 published to both regions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from lightkube import codecs
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import PersistentVolumeClaim, Pod
from lightkube.types import PatchType

from galleon.controllers.loop import KOPF_SETTLE_SECONDS
from galleon.controllers.runtime import FINALIZER
from galleon.kube.resources import ImageVersion, ScaleSet
from galleon.oci import RegistryClient
from galleon_testkit.admission import namespace_policy
from galleon_testkit.fleets import FleetHarness
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import stays_true, wait_for

pytestmark = pytest.mark.integration


def present(registry: Registry, repository: str, reference: str) -> bool:
    async def ask() -> bool:
        async with RegistryClient(registry.url) as client:
            return await client.has_manifest(repository, reference)

    return asyncio.run(ask())


def conditions(obj: Any) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def gone(kube: Any, resource: Any, name: str, namespace: str) -> bool:
    try:
        kube.get(resource, name, namespace=namespace)
    except ApiError as error:
        return error.status.code == 404
    return False


def version_of_source(fleet: FleetHarness, name: str, version: str, source_tag: str) -> None:
    """An ImageVersion `version` of `os` published from the source's `source_tag`."""
    fleet.kube.apply(
        codecs.from_dict(
            {
                "apiVersion": "galleon.dev/v1alpha1",
                "kind": "ImageVersion",
                "metadata": {"name": name, "namespace": fleet.namespace},
                "spec": {
                    "imageDefinitionName": "os",
                    "version": version,
                    "source": {
                        "image": f"{fleet.world.source.host}/sources/os:{source_tag}",
                        "plainHTTP": True,
                    },
                    "publishingProfile": {
                        "targetRegions": [{"name": fleet.east, "regionalReplicaCount": 2}]
                    },
                },
            }
        ),
        force=True,
    )


def test_deleting_a_version_keeps_the_copies_another_version_shares(
    fleet: FleetHarness,
) -> None:
    # 1.0.1 is published from the same source image as 1.0.0: same digest, same copies.
    version_of_source(fleet, "os-1-0-1", "1.0.1", "1.0.0")
    fleet.world.wait_state("os-1-0-1", "Completed", timeout=90)
    repository = fleet.world.status("os-1-0-1")["repository"]
    digest = fleet.digest("1.0.0")
    assert fleet.world.status("os-1-0-1")["sourceDigest"] == digest
    fleet.kube.delete(ImageVersion, "os-1-0-0", namespace=fleet.namespace)
    wait_for(
        lambda: gone(fleet.kube, ImageVersion, "os-1-0-0", fleet.namespace),
        timeout=60,
        description="1.0.0 deleted",
    )
    # The survivor's copies are all there, and it still says so truthfully.
    for registry in fleet.world.regions[fleet.east]:
        assert present(registry, repository, digest), registry.url
    status = fleet.world.status("os-1-0-1")
    assert status["replicationStatus"]["aggregatedState"] == "Completed"
    assert conditions({"status": status})["Ready"]["status"] == "True"


def test_a_copy_that_instances_pull_is_kept_when_the_replica_count_drops(
    fleet: FleetHarness,
) -> None:
    fleet.scaleset("web", 2)
    fleet.wait_fleet("web", "1.0.0", 2)
    east = fleet.world.regions[fleet.east]
    images = sorted(
        next(c.image for c in p.spec.containers if c.name == "os") for p in fleet.pods("web")
    )
    assert [i.split("/", 1)[0] for i in images] == sorted(r.host for r in east)  # spread
    repository = fleet.world.status("os-1-0-0")["repository"]
    digest = fleet.digest("1.0.0")
    fleet.kube.patch(
        ImageVersion,
        "os-1-0-0",
        {
            "spec": {
                "publishingProfile": {
                    "targetRegions": [
                        {"name": fleet.east, "regionalReplicaCount": 1},
                        {"name": fleet.west},
                    ]
                }
            }
        },
        namespace=fleet.namespace,
        patch_type=PatchType.MERGE,
    )

    def held() -> dict[str, Any]:
        status = fleet.world.status("os-1-0-0")
        condition = conditions({"status": status}).get("ReplicaRemovalHeld") or {}
        return status if condition.get("status") == "True" else {}

    status = wait_for(held, timeout=60, description="the pulled copy's removal to be held")
    line = next(s for s in status["replicationStatus"]["summary"] if s["region"] == fleet.east)
    kept = [r for r in line["replicas"] if r.get("retained")]
    assert [r["registry"] for r in kept] == ["r1"] and "web-1" in kept[0]["message"]
    assert present(east[1], repository, digest) and present(east[0], repository, digest)
    # Once nothing pulls it, the next pass removes it.
    fleet.kube.delete(ScaleSet, "web", namespace=fleet.namespace)
    wait_for(lambda: not fleet.pods("web"), timeout=60, description="the instances to go")
    fleet.kube.patch(
        ImageVersion,
        "os-1-0-0",
        {"spec": {"publishingProfile": {"endOfLifeDate": "2099-01-01T00:00:00Z"}}},
        namespace=fleet.namespace,
        patch_type=PatchType.MERGE,
    )
    wait_for(
        lambda: not present(east[1], repository, digest),
        timeout=60,
        description="the copy nothing pulls any more to be removed",
    )
    assert present(east[0], repository, digest)


def test_a_data_disk_name_taken_by_another_fleet_is_never_mounted(fleet: FleetHarness) -> None:
    # Disk "data-web" of ScaleSet "1" and disk "data" of ScaleSet "web-1" are both the
    # claim data-web-1-0 for instance 0.
    fleet.scaleset("1", 1, dataDisks=[{"name": "data-web", "lun": 0, "diskSizeGB": 1}])
    fleet.wait_fleet("1", "1.0.0", 1)
    theirs = fleet.kube.get(PersistentVolumeClaim, "data-web-1-0", namespace=fleet.namespace)
    fleet.scaleset("web-1", 1)

    def refused() -> dict[str, Any]:
        ready = conditions(fleet.kube.get(ScaleSet, "web-1", namespace=fleet.namespace)).get(
            "Ready"
        )
        return ready if ready and ready.get("reason") == "DataDiskConflict" else {}

    ready = wait_for(refused, timeout=60, description="the conflict to be said")
    assert "data-web-1-0" in ready["message"] and "'1'" in ready["message"], ready
    stays_true(lambda: fleet.pods("web-1") == [], duration=3, description="no pod mounts it")
    claim = fleet.kube.get(PersistentVolumeClaim, "data-web-1-0", namespace=fleet.namespace)
    assert claim.metadata.uid == theirs.metadata.uid
    assert claim.metadata.labels["galleon.dev/scaleset"] == "1"
    assert fleet.events("web-1", "DataDiskConflict")


def test_the_retention_policy_holds_when_it_changed_while_the_operator_was_down(
    fleet: FleetHarness, operator: Any
) -> None:
    fleet.scaleset("keep", 2, persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete"})
    fleet.wait_fleet("keep", "1.0.0", 2)
    wait_for(
        lambda: len(fleet.claims("keep")) == 2,
        timeout=30,
        description="both data disks",
    )
    disks = fleet.claims("keep")
    operator.stop()
    fleet.patch(
        "keep", {"spec": {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain"}}}
    )
    fleet.kube.delete(ScaleSet, "keep", namespace=fleet.namespace)
    operator.start()
    wait_for(
        lambda: gone(fleet.kube, ScaleSet, "keep", fleet.namespace),
        timeout=60,
        description="the ScaleSet to go",
    )
    wait_for(lambda: not fleet.pods("keep"), timeout=60, description="its instances to go")
    # The garbage collector has had its chance: the disks are still the same disks.
    stays_true(
        lambda: fleet.claims("keep") == disks,
        duration=5,
        description="the retained disks to stay",
    )


def test_switching_the_definition_rolls_the_fleet_onto_the_other_image(
    fleet: FleetHarness,
) -> None:
    fleet.scaleset("web", 2)
    fleet.wait_fleet("web", "1.0.0", 2)
    # Another definition of the same gallery whose 1.0.0 is another image.
    fleet.kube.apply(
        codecs.from_dict(
            {
                "apiVersion": "galleon.dev/v1alpha1",
                "kind": "ImageDefinition",
                "metadata": {"name": "other", "namespace": fleet.namespace},
                "spec": {
                    "galleryName": "gallery",
                    "identifier": {"publisher": "galleon", "offer": "test", "sku": "other"},
                    "osType": "Linux",
                },
            }
        ),
        force=True,
    )
    fleet.kube.apply(
        codecs.from_dict(
            {
                "apiVersion": "galleon.dev/v1alpha1",
                "kind": "ImageVersion",
                "metadata": {"name": "other-1-0-0", "namespace": fleet.namespace},
                "spec": {
                    "imageDefinitionName": "other",
                    "version": "1.0.0",
                    "source": {
                        "image": f"{fleet.world.source.host}/sources/os:1.0.2",
                        "plainHTTP": True,
                    },
                    "publishingProfile": {
                        "targetRegions": [{"name": fleet.east, "regionalReplicaCount": 2}]
                    },
                },
            }
        ),
        force=True,
    )
    fleet.world.wait_state("other-1-0-0", "Completed", timeout=90)
    fleet.patch("web", {"spec": {"imageReference": {"imageDefinitionName": "other"}}})
    wanted = fleet.digest("1.0.2")

    def rolled() -> bool:
        pods = [p for p in fleet.pods("web") if p.metadata.deletionTimestamp is None]
        return len(pods) == 2 and all(
            next(c.image for c in p.spec.containers if c.name == "os").endswith(wanted)
            for p in pods
        )

    wait_for(rolled, timeout=90, description="every instance on the other definition's image")


def test_a_pod_the_apiserver_refuses_is_said_with_its_message(fleet: FleetHarness) -> None:
    fleet.scaleset(
        "bad",
        1,
        template={
            "spec": {
                "containers": [
                    {
                        "name": "os",
                        "image": "set-by-galleon",
                        "readinessProbe": {"httpGet": {"path": "/", "port": 70000}},
                    }
                ]
            }
        },
    )

    def said() -> dict[str, dict[str, Any]]:
        found = conditions(fleet.kube.get(ScaleSet, "bad", namespace=fleet.namespace))
        ready = found.get("Ready") or {}
        return found if ready.get("reason") == "InstanceCreateRefused" else {}

    found = wait_for(said, timeout=60, description="the refused create to be said")
    assert "65535" in found["Ready"]["message"], found["Ready"]
    assert found["Stalled"]["status"] == "True"
    assert fleet.events("bad", "InstanceCreateRefused")


def test_a_scaleset_whose_definition_does_not_exist_is_stalled(fleet: FleetHarness) -> None:
    fleet.scaleset("lost", 1, imageReference={"imageDefinitionName": "nope", "version": "latest"})

    def stalled() -> dict[str, dict[str, Any]]:
        found = conditions(fleet.kube.get(ScaleSet, "lost", namespace=fleet.namespace))
        return found if (found.get("Stalled") or {}).get("status") == "True" else {}

    found = wait_for(stalled, timeout=60, description="Stalled")
    assert found["Stalled"]["reason"] == "ImageDefinitionNotFound"
    assert '"nope"' in found["Ready"]["message"]
    assert found["Reconciling"]["status"] == "False"


def test_a_failed_instance_is_replaced_with_its_disks(fleet: FleetHarness) -> None:
    fleet.scaleset("web", 2)
    fleet.wait_fleet("web", "1.0.0", 2)
    before = {p.metadata.name: p.metadata.uid for p in fleet.pods("web")}
    disks = fleet.claims("web")
    # The pod stopped for good (an eviction, a node that gave up on it).
    fleet.kube.patch(
        Pod.Status,
        "web-0",
        {"status": {"phase": "Failed", "reason": "Evicted", "message": "test eviction"}},
        namespace=fleet.namespace,
        patch_type=PatchType.MERGE,
    )

    def replaced() -> bool:
        pods = {p.metadata.name: p for p in fleet.pods("web")}
        again = pods.get("web-0")
        return (
            again is not None
            and again.metadata.uid != before["web-0"]
            and again.metadata.deletionTimestamp is None
            and (again.status.phase or "") != "Failed"
        )

    wait_for(replaced, timeout=60, description="the failed instance re-created")
    fleet.wait_fleet("web", "1.0.0", 2)
    assert {p.metadata.name: p.metadata.uid for p in fleet.pods("web")}["web-1"] == before["web-1"]
    assert fleet.claims("web") == disks  # the same data disks


@pytest.fixture
def finalizer_refused(fleet: FleetHarness) -> Iterator[None]:
    """A ValidatingAdmissionPolicy, bound to the test's namespace, that refuses the
    operator's finalizer on ScaleSets there; in effect once a dry-run create with it
    is refused."""
    with namespace_policy(
        fleet.kube,
        fleet.namespace,
        rule={
            "apiGroups": ["galleon.dev"],
            "apiVersions": ["*"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["scalesets"],
        },
        expression="!has(object.metadata.finalizers) || "
        f"!object.metadata.finalizers.exists(f, f == '{FINALIZER}')",
        message="no finalizer here",
        prefix="no-scaleset-finalizer",
    ):

        def refused() -> bool:
            probe = fleet.scaleset_document("probe", 1)
            probe["metadata"]["finalizers"] = [FINALIZER]
            try:
                fleet.kube.create(codecs.from_dict(probe), dry_run=True)
            except ApiError as error:
                return "no finalizer here" in str(error.status.message)
            return False

        wait_for(refused, timeout=30, description="the policy refusing the finalizer")
        yield


def test_a_scaleset_creates_no_pod_or_disk_before_its_finalizer(
    fleet: FleetHarness, operator: Any, finalizer_refused: None
) -> None:
    """A ScaleSet deleted before kopf's finalizer is on it would lose its disks whatever
    its retention policy says, so its first pass waits for the finalizer. Here a policy
    refuses it: nothing is created for the wait's 10 s, the operator's log says why,
    and then the ScaleSet goes on without it."""
    fleet.scaleset("unguarded", 2)

    def nothing_created() -> bool:
        claims = fleet.kube.list(PersistentVolumeClaim, namespace=fleet.namespace)
        return not fleet.pods("unguarded") and not list(claims)

    stays_true(nothing_created, duration=KOPF_SETTLE_SECONDS - 2, description="no pod, no disk")
    fleet.wait_fleet("unguarded", "1.0.0", 2)
    assert "kopf's finalizer and diff base are not on the object yet" in operator.log_text()
