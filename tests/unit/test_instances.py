"""Pods and data disks built for a ScaleSet's instances (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from galleon.api.region import REGION_LABEL
from galleon.api.scaleset import ScaleSetSpec
from galleon.core import instances as inst

OWNER = {"metadata": {"name": "web", "namespace": "team", "uid": "u-1"}}


def spec(**extra: Any) -> ScaleSetSpec:
    document: dict[str, Any] = {
        "region": "eastus2",
        "capacity": 3,
        "imageReference": {"imageDefinitionName": "ubuntu"},
        "osContainerName": "os",
        "template": {
            "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
            "spec": {
                "containers": [
                    {"name": "sidecar", "image": "busybox"},
                    {"name": "os", "image": "x", "readinessProbe": {"exec": {"command": ["t"]}}},
                ],
                "nodeSelector": {"disk": "ssd"},
            },
        },
        "dataDisks": [{"name": "data", "lun": 0, "diskSizeGB": 4}],
    }
    document.update(extra)
    return ScaleSetSpec.model_validate(document)


IMAGE = inst.image_identity("ns", "ubuntu")


def test_the_pod_runs_the_version_image_with_its_disks_on_region_nodes() -> None:
    s = spec()
    rev = inst.revision("1.0.2", inst.model_hash(s, IMAGE))
    pod = inst.pod_manifest(
        OWNER, s, 4, rev, "r:5000/g@sha256:ab", {REGION_LABEL: "eastus2"}, "pull"
    )
    assert pod["metadata"]["name"] == "web-4"
    labels = pod["metadata"]["labels"]
    assert labels[inst.INDEX_LABEL] == "4" and labels[inst.VERSION_LABEL] == "1.0.2"
    assert labels[inst.REVISION_LABEL] == rev and labels["app"] == "web"
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    assert containers["os"]["image"] == "r:5000/g@sha256:ab"
    assert containers["sidecar"]["image"] == "busybox"  # only the OS container changes
    assert containers["os"]["volumeMounts"] == [{"name": "disk-data", "mountPath": "/data/data"}]
    assert pod["spec"]["volumes"] == [
        {"name": "disk-data", "persistentVolumeClaim": {"claimName": "data-web-4"}}
    ]
    assert pod["spec"]["nodeSelector"] == {"disk": "ssd", REGION_LABEL: "eastus2"}
    assert pod["spec"]["imagePullSecrets"] == [{"name": "pull"}]
    owner = pod["metadata"]["ownerReferences"][0]
    assert owner["uid"] == "u-1" and owner["controller"] is True
    # The template itself is untouched.
    assert s.template.spec["containers"][1]["image"] == "x"


def test_extensions_run_the_os_image_and_other_init_containers_keep_theirs() -> None:
    template = {
        "spec": {
            "initContainers": [
                {"name": "extension", "image": "set-by-galleon", "args": ["extension"]},
                {"name": "tools", "image": "busybox"},
            ],
            "containers": [{"name": "os", "image": "set-by-galleon"}],
        }
    }
    s = spec(template=template)
    pod = inst.pod_manifest(OWNER, s, 0, "1.0.2-h", "r:5000/g@sha256:ab", {})
    images = {c["name"]: c["image"] for c in pod["spec"]["initContainers"]}
    assert images == {"extension": "r:5000/g@sha256:ab", "tools": "busybox"}
    assert s.template.spec["initContainers"][0]["image"] == "set-by-galleon"


def test_the_revision_moves_with_the_model_but_not_with_capacity() -> None:
    base = inst.model_hash(spec(), IMAGE)
    assert inst.model_hash(spec(capacity=9), IMAGE) == base
    changed = spec(minReadySeconds=5)
    assert inst.model_hash(changed, IMAGE) == base
    other = spec(dataDisks=[{"name": "data", "lun": 0, "diskSizeGB": 4, "mountPath": "/var"}])
    assert inst.model_hash(other, IMAGE) != base
    assert inst.version_of(inst.revision("1.10.0", base)) == "1.10.0"


def test_the_revision_moves_with_the_image_even_when_the_version_string_stays() -> None:
    # ubuntu@1.0.0 -> windows@1.0.0 (or another namespace's ubuntu): what the instances
    # run changes, so the revision must.
    base = inst.model_hash(spec(), IMAGE)
    other_definition = inst.image_identity("ns", "windows")
    other_namespace = inst.image_identity("shared", "ubuntu")
    hashes = {inst.model_hash(spec(), i) for i in (other_definition, other_namespace)}
    assert base not in hashes and len(hashes) == 2


def test_claims_follow_the_retention_rule() -> None:
    disk = spec().data_disks[0]
    owned = inst.claim_manifest(OWNER, disk, 2, owned=True)
    kept = inst.claim_manifest(OWNER, disk, 2, owned=False)
    assert owned["metadata"]["name"] == "data-web-2"
    assert owned["spec"]["resources"]["requests"]["storage"] == "4Gi"
    assert owned["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert "ownerReferences" not in kept["metadata"]


def test_a_model_without_its_os_container_or_probe_is_refused() -> None:
    with pytest.raises(inst.InvalidModel, match="no container named 'vm'"):
        inst.check_model(spec(osContainerName="vm"))
    no_probe = spec(template={"spec": {"containers": [{"name": "os", "image": "x"}]}}, dataDisks=[])
    assert not inst.has_health_source(no_probe)
    assert inst.has_health_source(spec())


def test_instances_spread_over_the_replicas() -> None:
    hosts = ["a:1", "b:2"]
    images = [inst.image_for(i, hosts, "repo", "sha256:x") for i in range(4)]
    assert [i.split("/")[0] for i in images] == ["a:1", "b:2", "a:1", "b:2"]
    with pytest.raises(inst.InvalidModel):
        inst.image_for(0, [], "repo", "sha256:x")
