"""In-place OS image updates: when an instance may get its image in place, the patch,
and how a pod being updated is seen (`galleon.core.inplace`, `galleon.core.observed`)."""

from __future__ import annotations

import json
from typing import Any

from galleon.api.scaleset import ScaleSetSpec
from galleon.core import inplace
from galleon.core.observed import observe, slim

OLD = "sha256:" + "a" * 64
NEW = "sha256:" + "b" * 64


def spec(**template: Any) -> ScaleSetSpec:
    pod = {"containers": [{"name": "os", "image": "set-by-galleon"}], **template}
    return ScaleSetSpec.model_validate(
        {
            "region": "r",
            "capacity": 2,
            "imageReference": {"imageDefinitionName": "d"},
            "upgradePolicy": {"osImageUpdate": "InPlaceIfPossible"},
            "template": {"spec": pod},
        }
    )


def pod(
    container_id: str = "containerd://old", image_id: str = f"r/g@{OLD}", **meta: Any
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web-0",
            "uid": "u0",
            "resourceVersion": "41",
            "labels": {
                "galleon.dev/index": "0",
                "galleon.dev/version": "1.0.0",
                "galleon.dev/revision": "1.0.0-abc",
            },
            "annotations": {},
            **meta,
        },
        "spec": {"nodeName": "n1", "containers": [{"name": "os", "image": f"r/g@{OLD}"}]},
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-04T10:00:00Z"}
            ],
            "containerStatuses": [
                {
                    "name": "os",
                    "containerID": container_id,
                    "imageID": image_id,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": "2026-12-04T09:59:59Z"}},
                }
            ],
        },
    }


def patched(before: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """`before` with the patch's labels and annotations applied, as the apiserver
    would (a null removes the key)."""
    after = json.loads(json.dumps(before))
    meta = after["metadata"]
    meta["labels"].update(body["metadata"]["labels"])
    for key, value in body["metadata"]["annotations"].items():
        if value is None:
            meta["annotations"].pop(key, None)
        else:
            meta["annotations"][key] = value
    return after


def test_only_a_new_version_of_the_same_model_is_updated_in_place() -> None:
    assert inplace.blocker(spec(), pod(), "1.0.2-abc", (None, None)) is None
    assert inplace.blocker(spec(), pod(), "1.0.2-def", (None, None)) == "the instance model changed"
    assert (
        inplace.blocker(
            spec(), pod(deletionTimestamp="2026-12-04T10:00:00Z"), "1.0.2-abc", (None, None)
        )
        == "its pod is being deleted"
    )
    finished = pod()
    finished["status"]["phase"] = "Failed"
    assert inplace.blocker(spec(), finished, "1.0.2-abc", (None, None)) == "its pod has finished"
    extension = spec(initContainers=[{"name": "ext", "image": "set-by-galleon"}])
    assert inplace.blocker(extension, pod(), "1.0.2-abc", (None, None)) == (
        "an init container runs the OS image"
    )
    helper = spec(initContainers=[{"name": "helper", "image": "busybox"}])
    assert inplace.blocker(helper, pod(), "1.0.2-abc", (None, None)) is None
    assert inplace.blocker(spec(), pod(), "1.0.2-abc", None) == "an image has no copy in the region"
    assert inplace.blocker(spec(), pod(), "1.0.2-abc", ("s", "s")) is None


def test_a_pod_being_updated_is_not_ready_until_kubelet_runs_the_new_image() -> None:
    before = pod()
    body = inplace.patch(spec(), before, "1.0.2-abc", f"r/g@{NEW}")
    assert body["metadata"]["resourceVersion"] == "41"
    assert body["spec"] == {"containers": [{"name": "os", "image": f"r/g@{NEW}"}]}
    assert body["metadata"]["annotations"]["galleon.dev/upgrade-approved"] is None
    after = patched(before, body)

    # The patch is stored, kubelet has not synced: the old container still says Ready.
    seen = observe(slim(after))
    assert seen is not None and seen.revision == "1.0.2-abc"
    assert not seen.ready and seen.ready_since is None
    # kubelet killed the old container and started one on the old image (a sync that
    # had not seen the new spec yet): still updating.
    after["status"]["containerStatuses"][0]["containerID"] = "containerd://next"
    assert not observe(slim(after)).ready
    # The new container runs the new digest and its probe passed.
    after["status"]["containerStatuses"][0]["imageID"] = f"r/g@{NEW}"
    after["status"]["conditions"][0]["lastTransitionTime"] = "2026-12-04T10:00:07Z"
    done = observe(slim(after))
    assert done.ready and f"{done.ready_since:%H:%M:%S}" == "10:00:07"
    # A later crash restart of the new image is not an update.
    after["status"]["containerStatuses"][0]["containerID"] = "containerd://third"
    assert observe(slim(after)).ready


def test_a_pod_not_yet_started_is_updated_once_any_container_runs_the_new_image() -> None:
    before = pod()
    del before["status"]["containerStatuses"]
    after = patched(before, inplace.patch(spec(), before, "1.0.2-abc", f"r/g@{NEW}"))
    after["status"]["containerStatuses"] = [
        {"name": "os", "containerID": "containerd://first", "imageID": f"r/g@{NEW}"}
    ]
    assert observe(slim(after)).ready


def test_the_same_image_reference_moves_only_the_labels() -> None:
    before = pod()
    body = inplace.patch(spec(), before, "1.0.2-abc", f"r/g@{OLD}", restart=False)
    after = patched(before, body)
    assert inplace.ANNOTATION not in after["metadata"]["annotations"]
    seen = observe(slim(after))
    assert seen.ready and seen.revision == "1.0.2-abc"


def test_an_annotation_it_cannot_read_holds_nothing() -> None:
    for text in ("{", "[]", json.dumps({"container": 3}), "x" * 5000):
        odd = pod()
        odd["metadata"]["annotations"][inplace.ANNOTATION] = text
        assert observe(slim(odd)).ready, text


def test_an_update_kubelet_holds_in_restart_backoff_is_seen_through_the_slim_pod() -> None:
    before = pod()
    after = patched(before, inplace.patch(spec(), before, "1.0.2-abc", f"r/g@{NEW}"))
    status = after["status"]["containerStatuses"][0]
    # kubelet killed the old container and holds the start of the new image: the status
    # is the old container's, waiting in CrashLoopBackOff.
    status["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}}
    assert inplace.held(slim(after)) and not observe(slim(after)).ready
    # Not held: waiting for another reason, or the new image started and then crashed.
    status["state"]["waiting"]["reason"] = "ContainerCreating"
    assert not inplace.held(slim(after))
    status["state"]["waiting"]["reason"] = "CrashLoopBackOff"
    status.update(containerID="containerd://new", imageID=f"r/g@{NEW}")
    assert not inplace.held(slim(after))
    # A pod never updated in place is never held.
    crashing = pod()
    crashing["status"]["containerStatuses"][0]["state"] = {
        "waiting": {"reason": "CrashLoopBackOff"}
    }
    assert not inplace.held(slim(crashing))
