"""A ScaleSet's instances as Kubernetes objects: names, labels, revisions, pod and
PVC manifests. Pure functions; the ScaleSet controller sends what they build.

Rules of this module:
- Instance `i` of ScaleSet `web` is the Pod `web-i`; its data disk `data` is the PVC
  `data-web-i` (StatefulSet's naming, so the claims of a deleted and re-created
  ScaleSet are found again).
- An instance's *revision* is `<version>-<model hash>`: the image version it runs
  and a hash of everything else that decides what it runs: which image it is (the
  definition's namespace and name: switching from `ubuntu@1.0.0` to
  `windows@1.0.0` is a new revision though the version string stays) and the
  instance model that shapes the pod (pod template, OS container name, data disk
  mounts). The revision is a pod label; a rolling upgrade moves instances from one
  revision to another, so a new image version, another image and a changed pod
  template roll out the same way. The hash part changes only with what the user
  changed (another definition, another template), never with the version, so an
  upgrade can tell a new version (the platform's) from a changed model (the
  user's). A version's digest needs no place in it: a version is published once per
  definition (a second ImageVersion of it is a Conflict), and it cannot be deleted
  and re-published while any instance runs it (deletion is held).
- The OS container's image is the version's copy in one of the region's registry
  replicas, by digest: instances are spread over the replicas by index.
- *Extensions*: an init container whose template image is the OS container's
  template image (the placeholder, e.g. `set-by-galleon`) runs the OS image too, so
  a provisioning step runs again on every new OS image, before the OS container.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from galleon import GROUP, VERSION
from galleon.api.scaleset import DataDisk, ScaleSetSpec

SCALESET_LABEL = f"{GROUP}/scaleset"
INDEX_LABEL = f"{GROUP}/index"
VERSION_LABEL = f"{GROUP}/version"
REVISION_LABEL = f"{GROUP}/revision"
DISK_LABEL = f"{GROUP}/disk"
START_ANNOTATION = f"{GROUP}/start-upgrade"
"""Set to an RFC 3339 time to start an upgrade by hand (Manual mode, or a retry)."""
CANCEL_ANNOTATION = f"{GROUP}/cancel-upgrade"
"""Set to an RFC 3339 time to cancel the upgrade running at that time."""
HASH_LENGTH = 10


class InvalidModel(ValueError):
    """The instance model cannot produce pods (the message says why)."""


def pod_name(scaleset: str, index: int) -> str:
    return f"{scaleset}-{index}"


def claim_name(disk: str, scaleset: str, index: int) -> str:
    return f"{disk}-{scaleset}-{index}"


def selector(scaleset: str) -> str:
    """The label selector of a ScaleSet's instances (also written to status.selector)."""
    return f"{SCALESET_LABEL}={scaleset}"


def image_identity(definition_namespace: str, definition: str) -> str:
    """Which image an instance runs, beyond its version string: `ns/definition`."""
    return f"{definition_namespace}/{definition}"


def model_hash(spec: ScaleSetSpec, image: str) -> str:
    """Hash of the instance model and the image's identity (`image_identity`): what
    the revision adds to the version.

    >>> from galleon.api.scaleset import ScaleSetSpec
    >>> spec = ScaleSetSpec.model_validate({"region": "r", "capacity": 1,
    ...     "imageReference": {"imageDefinitionName": "d"},
    ...     "template": {"spec": {"containers": [{"name": "os", "image": "x"}]}}})
    >>> ubuntu = image_identity("ns", "ubuntu")
    >>> len(model_hash(spec, ubuntu))
    10
    >>> model_hash(spec, ubuntu) == model_hash(spec.model_copy(), ubuntu)
    True
    >>> model_hash(spec, ubuntu) == model_hash(spec, image_identity("ns", "windows"))
    False
    """
    model = {
        "image": image,
        "template": spec.template.model_dump(mode="json", by_alias=True),
        "osContainer": os_container_name(spec),
        "disks": [
            {"name": d.name, "lun": d.lun, "mountPath": mount_path(d)} for d in spec.data_disks
        ],
    }
    text = json.dumps(model, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


def revision(version: str, hash_: str) -> str:
    """`1.0.2-3f2a9c01de`: fits a label value (versions never contain '-')."""
    return f"{version}-{hash_}"


def version_of(revision_: str) -> str:
    """The image version part of a revision.

    >>> version_of("1.0.2-3f2a9c01de")
    '1.0.2'
    """
    return revision_.split("-", 1)[0]


def hash_of(revision_: str) -> str:
    """The model hash part of a revision ('' when it has none).

    >>> hash_of("1.0.2-3f2a9c01de"), hash_of("1.0.2")
    ('3f2a9c01de', '')
    """
    return revision_.split("-", 1)[1] if "-" in revision_ else ""


def revision_of_pod(pod: Mapping[str, Any]) -> str:
    """The revision an instance's pod is labelled with ('' when none)."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return str(labels.get(REVISION_LABEL) or "")


def os_container_name(spec: ScaleSetSpec) -> str:
    containers = spec.template.spec.get("containers") or []
    if spec.os_container_name:
        return spec.os_container_name
    first = containers[0] if containers and isinstance(containers[0], Mapping) else {}
    return str(first.get("name", ""))


def _os_container(pod_spec: Mapping[str, Any], name: str) -> dict[str, Any]:
    for container in pod_spec.get("containers") or []:
        if isinstance(container, dict) and container.get("name") == name:
            return container
    raise InvalidModel(f"the pod template has no container named {name!r} (osContainerName)")


def os_container(spec: ScaleSetSpec) -> dict[str, Any]:
    """The template's OS container (InvalidModel: it has none)."""
    return _os_container(spec.template.spec, os_container_name(spec))


def check_model(spec: ScaleSetSpec) -> None:
    """Raise InvalidModel when no pod can be built from the spec."""
    os_container(spec)


def has_health_source(spec: ScaleSetSpec) -> bool:
    """Whether the OS container has a readiness probe (rolling upgrades need one)."""
    try:
        container = os_container(spec)
    except InvalidModel:
        return False
    return bool(container.get("readinessProbe"))


def mount_path(disk: DataDisk) -> str:
    return disk.mount_path or f"/data/{disk.name}"


def registry_host(url: str) -> str:
    """`http://127.0.0.1:5101/` → `127.0.0.1:5101` (what an image reference starts with)."""
    return url.split("://", 1)[-1].rstrip("/")


def image_for(index: int, hosts: Sequence[str], repository: str, digest: str) -> str:
    """The image of instance `index`: by digest, from replica `index % len(hosts)`.

    >>> image_for(3, ["r1:5000", "r2:5000"], "galleon/ns/g/d", "sha256:ab")
    'r2:5000/galleon/ns/g/d@sha256:ab'
    """
    if not hosts:
        raise InvalidModel("the version has no completed replica in the region")
    return f"{hosts[index % len(hosts)]}/{repository}@{digest}"


def owner_reference(scaleset: Mapping[str, Any]) -> dict[str, Any]:
    meta = scaleset["metadata"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ScaleSet",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_manifest(
    scaleset: Mapping[str, Any],
    spec: ScaleSetSpec,
    index: int,
    revision_: str,
    image: str,
    node_selector: Mapping[str, str],
    pull_secret: str | None = None,
) -> dict[str, Any]:
    """The Pod of instance `index` at `revision_`, pulling `image` into the OS container."""
    name = scaleset["metadata"]["name"]
    pod_spec = copy.deepcopy(spec.template.spec)
    container = _os_container(pod_spec, os_container_name(spec))
    placeholder = container.get("image")
    container["image"] = image
    for extension in pod_spec.get("initContainers") or []:
        if isinstance(extension, dict) and placeholder and extension.get("image") == placeholder:
            extension["image"] = image
    pod_spec["hostname"] = pod_name(name, index)
    pod_spec["nodeSelector"] = {**(pod_spec.get("nodeSelector") or {}), **node_selector}
    if pull_secret:
        secrets = list(pod_spec.get("imagePullSecrets") or [])
        if all(s.get("name") != pull_secret for s in secrets):
            secrets.append({"name": pull_secret})
        pod_spec["imagePullSecrets"] = secrets
    if spec.data_disks:
        volumes = list(pod_spec.get("volumes") or [])
        mounts = list(container.get("volumeMounts") or [])
        for disk in spec.data_disks:
            volume = f"disk-{disk.name}"
            volumes.append(
                {
                    "name": volume,
                    "persistentVolumeClaim": {"claimName": claim_name(disk.name, name, index)},
                }
            )
            mounts.append({"name": volume, "mountPath": mount_path(disk)})
        pod_spec["volumes"] = volumes
        container["volumeMounts"] = mounts
    labels = {
        **spec.template.metadata.labels,
        SCALESET_LABEL: name,
        INDEX_LABEL: str(index),
        VERSION_LABEL: version_of(revision_),
        REVISION_LABEL: revision_,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(name, index),
            "namespace": scaleset["metadata"]["namespace"],
            "labels": labels,
            "annotations": dict(spec.template.metadata.annotations),
            "ownerReferences": [owner_reference(scaleset)],
        },
        "spec": pod_spec,
    }


def claim_manifest(
    scaleset: Mapping[str, Any], disk: DataDisk, index: int, *, owned: bool
) -> dict[str, Any]:
    """The PVC of one data disk of instance `index`; `owned` (retention policy
    whenDeleted=Delete) makes it go with the ScaleSet."""
    name = scaleset["metadata"]["name"]
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": f"{disk.disk_size_gb}Gi"}},
    }
    if disk.storage_class_name:
        spec["storageClassName"] = disk.storage_class_name
    metadata: dict[str, Any] = {
        "name": claim_name(disk.name, name, index),
        "namespace": scaleset["metadata"]["namespace"],
        "labels": {SCALESET_LABEL: name, INDEX_LABEL: str(index), DISK_LABEL: disk.name},
    }
    if owned:
        metadata["ownerReferences"] = [owner_reference(scaleset)]
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata, "spec": spec}
