"""In-place OS image updates (`upgradePolicy.osImageUpdate: InPlaceIfPossible`): an
instance gets its new OS image without losing its pod. Pure functions; the ScaleSet
controller sends the patch they build.

Rules of this module:
- An upgrade (or a rollback) of an instance is done in place only when nothing but
  the image version changes: the same model hash in both revisions (template, OS
  container, disks, image definition), no init container runs the OS image (an
  extension runs once per pod, so a new image would skip it), the same image pull
  Secret for both images, and a pod that is neither being deleted nor finished.
  Anything else is a delete and a create, as with Recreate.
- The update is one strategic merge PATCH of the pod at the resourceVersion observed:
  the OS container's image, the version and revision labels, the pending-upgrade
  notice and approval removed (they were about this upgrade), and the annotation
  `galleon.dev/in-place-update` recording the OS container's name, the ID of the
  container it replaces and the digest it goes to. kubelet sees the container's
  definition changed and restarts it with the new image, whatever the restart
  policy.
- Until kubelet reports a container of that name with another container ID running
  an image of that digest, the instance is *updating*: not Ready, whatever its
  conditions say (between the patch and kubelet's next sync, the pod still reports
  the old container Ready). The annotation lives on the pod, so a restarted
  operator reads the same state.
- An update kubelet holds in its restart backoff before the new image ever started
  (`held`) is finished by a recreate: the pod is deleted and created again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from galleon import GROUP
from galleon.api.scaleset import ScaleSetSpec
from galleon.core import deferral
from galleon.core import instances as inst

ANNOTATION = f"{GROUP}/in-place-update"
ANNOTATION_MAX = 1024
"""Longest annotation value read (a name, a container ID and a digest fit in it)."""


def container_status(pod: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """The status of the pod's container `name` (None: kubelet reported none yet)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if isinstance(status, Mapping) and status.get("name") == name:
            return status
    return None


def blocker(
    spec: ScaleSetSpec,
    pod: Mapping[str, Any],
    to_revision: str,
    pull_secrets: tuple[str | None, str | None] | None,
) -> str | None:
    """Why the pod cannot get `to_revision` in place (None: it can). `pull_secrets`:
    the pull Secrets of the pod's image and of the new one (None: one of the images
    has no copy in the region).

    >>> from galleon.api.scaleset import ScaleSetSpec
    >>> spec = ScaleSetSpec.model_validate({"region": "r", "capacity": 1,
    ...     "imageReference": {"imageDefinitionName": "d"},
    ...     "template": {"spec": {"containers": [{"name": "os", "image": "x"}]}}})
    >>> pod = {"metadata": {"labels": {"galleon.dev/revision": "1.0.0-ab"}}}
    >>> blocker(spec, pod, "1.0.2-ab", (None, None)) is None
    True
    >>> blocker(spec, pod, "1.0.2-cd", (None, None))
    'the instance model changed'
    >>> blocker(spec, pod, "1.0.2-ab", ("east", "west"))
    'the image pull Secret changes'
    """
    meta = pod.get("metadata") or {}
    current = inst.hash_of(inst.revision_of_pod(pod))
    if not current or current != inst.hash_of(to_revision):
        return "the instance model changed"
    if meta.get("deletionTimestamp") is not None:
        return "its pod is being deleted"
    if (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
        return "its pod has finished"
    placeholder = inst.os_container(spec).get("image")
    if placeholder and any(
        isinstance(c, Mapping) and c.get("image") == placeholder
        for c in spec.template.spec.get("initContainers") or []
    ):
        return "an init container runs the OS image"
    if pull_secrets is None:
        return "an image has no copy in the region"
    if pull_secrets[0] != pull_secrets[1]:
        return "the image pull Secret changes"
    return None


def digest_of(image: str) -> str:
    """`host/repo@sha256:ab` → `sha256:ab` ('' for a reference by tag)."""
    return image.rsplit("@", 1)[1] if "@" in image else ""


def patch(
    spec: ScaleSetSpec,
    pod: Mapping[str, Any],
    to_revision: str,
    image: str,
    *,
    restart: bool = True,
) -> dict[str, Any]:
    """The strategic merge patch that moves the pod to `to_revision` running `image`.
    `restart` False: the image reference stays the same (a version republished with
    the same digest from the same registry), so kubelet restarts nothing and the
    annotation is not written.

    >>> from galleon.api.scaleset import ScaleSetSpec
    >>> spec = ScaleSetSpec.model_validate({"region": "r", "capacity": 1,
    ...     "imageReference": {"imageDefinitionName": "d"},
    ...     "template": {"spec": {"containers": [{"name": "os", "image": "x"}]}}})
    >>> pod = {"metadata": {"resourceVersion": "7"},
    ...        "status": {"containerStatuses": [{"name": "os", "containerID": "c://1"}]}}
    >>> body = patch(spec, pod, "1.0.2-ab", "r:5000/g@sha256:ef")
    >>> body["spec"]
    {'containers': [{'name': 'os', 'image': 'r:5000/g@sha256:ef'}]}
    >>> body["metadata"]["resourceVersion"], body["metadata"]["labels"]
    ('7', {'galleon.dev/version': '1.0.2', 'galleon.dev/revision': '1.0.2-ab'})
    >>> json.loads(body["metadata"]["annotations"][ANNOTATION])
    {'container': 'os', 'from': 'c://1', 'digest': 'sha256:ef'}
    """
    name = inst.os_container_name(spec)
    status = container_status(pod, name) or {}
    annotations: dict[str, Any] = {
        deferral.PENDING_ANNOTATION: None,
        deferral.APPROVED_ANNOTATION: None,
        ANNOTATION: None,
    }
    if restart:
        annotations[ANNOTATION] = json.dumps(
            {
                "container": name,
                "from": str(status.get("containerID") or ""),
                "digest": digest_of(image),
            },
            separators=(",", ":"),
        )
    metadata: dict[str, Any] = {
        "labels": {
            inst.VERSION_LABEL: inst.version_of(to_revision),
            inst.REVISION_LABEL: to_revision,
        },
        "annotations": annotations,
    }
    resource_version = (pod.get("metadata") or {}).get("resourceVersion")
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return {"metadata": metadata, "spec": {"containers": [{"name": name, "image": image}]}}


def updating(pod: Mapping[str, Any]) -> bool:
    """Whether the pod's OS container is still being replaced in place: it carries the
    annotation, and kubelet reports no container of that name with another ID running
    an image of the recorded digest. An annotation it cannot read holds nothing.

    >>> note = json.dumps({"container": "os", "from": "c://1", "digest": "sha256:ef"})
    >>> pod = {"metadata": {"annotations": {ANNOTATION: note}},
    ...        "status": {"containerStatuses": [
    ...            {"name": "os", "containerID": "c://1", "imageID": "r/g@sha256:ab"}]}}
    >>> updating(pod)
    True
    >>> pod["status"]["containerStatuses"][0].update(containerID="c://2",
    ...                                                imageID="r/g@sha256:ef")
    >>> updating(pod)
    False
    >>> updating({"metadata": {"annotations": {ANNOTATION: "{"}}})
    False
    """
    note = _note(pod)
    return note is not None and _replacing(pod, note)


def _replacing(pod: Mapping[str, Any], note: Mapping[str, Any]) -> bool:
    status = container_status(pod, note["container"]) or {}
    container_id, image_id = status.get("containerID"), status.get("imageID")
    if not container_id or container_id == note.get("from"):
        return True
    digest = note.get("digest")
    return bool(digest) and not (isinstance(image_id, str) and image_id.endswith(f"@{digest}"))


def _note(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """The pod's in-place update annotation, read (None: none, or one it cannot read)."""
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
    if not isinstance(text, str) or not text or len(text) > ANNOTATION_MAX:
        return None
    try:
        note = json.loads(text)
    except ValueError:
        return None
    if not isinstance(note, dict) or not isinstance(note.get("container"), str):
        return None
    return note


BACKOFF = "CrashLoopBackOff"


def held(pod: Mapping[str, Any]) -> bool:
    """Whether kubelet holds the pod's in-place update in its restart backoff: the old
    container has exited and no container of the new image has started, the status
    waiting with CrashLoopBackOff. kubelet keys that backoff by pod UID, container and
    image, so a pod updated in place to an image it ran before, seconds after its last
    restart, waits 10 s and more (doubling, up to 5 minutes) for a backoff that says
    nothing about the new image. A new pod (a new UID) starts at once.

    >>> note = json.dumps({"container": "os", "from": "c://1", "digest": "sha256:ef"})
    >>> waiting = {"waiting": {"reason": "CrashLoopBackOff"}}
    >>> pod = {"metadata": {"annotations": {ANNOTATION: note}},
    ...        "status": {"containerStatuses": [
    ...            {"name": "os", "containerID": "c://1", "state": waiting}]}}
    >>> held(pod)
    True
    >>> pod["status"]["containerStatuses"][0]["containerID"] = "c://2"  # the new one crashed
    >>> held(pod)
    False
    """
    note = _note(pod)
    if note is None or not _replacing(pod, note):
        return False
    status = container_status(pod, note["container"]) or {}
    waiting = (status.get("state") or {}).get("waiting") or {}
    return waiting.get("reason") == BACKOFF and status.get("containerID") in (
        None,
        "",
        note.get("from"),
    )


def slim_statuses(statuses: Sequence[Any]) -> list[dict[str, Any]]:
    """What `updating`, `held` and `patch` read of the container statuses: name,
    container ID and image ID of each, and why it waits."""
    kept = []
    for status in statuses:
        if not isinstance(status, Mapping):
            continue
        one = {k: status[k] for k in ("name", "containerID", "imageID") if k in status}
        reason = ((status.get("state") or {}).get("waiting") or {}).get("reason")
        if reason:
            one["state"] = {"waiting": {"reason": reason}}
        kept.append(one)
    return kept
