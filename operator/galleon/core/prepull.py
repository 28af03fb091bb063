"""Pre-pulling an upgrade's OS image onto the nodes of the instances it replaces.

Rules of this module (docs/rollout.md, "Pre-pull"):
- While an upgrade runs or is about to start, every node that runs an instance not
  yet on the target revision gets one short-lived pull pod: `nodeName` set (no
  scheduling), one container per image reference the node's instances will use,
  running `/bin/sh -c "exit 0"` as an unprivileged user, with the template's
  tolerations and pull Secrets. Its images are on the node once every container
  is past pulling (started, exited, or refused to start after the pull).
- Until every such node has pulled (or the pulls have run `PULL_TIMEOUT`), the
  upgrade is held (`ro.Hold`): no batch and no upgrade starts, so an instance's
  downtime is its start time, not its pull time. A pull that fails (the image
  cannot be pulled) is not waited for: the replaced instance would fail the
  same way, and the upgrade's health check judges it.
- Pull pods are labelled with the ScaleSet (`PULL_LABEL`, never the instances'
  label) and the target revision; they are owned by the ScaleSet, kept while the
  upgrade needs them, and deleted once the revision they pulled is no longer the
  one wanted: all at once, by one delete of the collection that selects them
  (`stale_selector`). A pull pod of the wanted revision whose node no longer needs it
  is deleted on its own only while it still runs (it may hold a node's pod slot); a
  finished one holds nothing and goes with the others at the end.
- Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from galleon import GROUP
from galleon.core import instances as inst
from galleon.core import reasons, times
from galleon.core.rollout.model import Hold

PULL_LABEL = f"{GROUP}/prepull-for"
"""On a pull pod: the ScaleSet it pulls for."""
PULL_REVISION_LABEL = f"{GROUP}/prepull-revision"
PULL_TIMEOUT = timedelta(minutes=5)
"""How long an upgrade waits for its pulls before it goes on without them."""
PULLING = frozenset({"ContainerCreating", "PodInitializing", "ErrImagePull", "ImagePullBackOff"})
PULL_FAILED = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})


@dataclass(frozen=True)
class PullPlan:
    create: tuple[dict[str, Any], ...] = ()
    delete: tuple[str, ...] = ()
    """Pull pods deleted one by one: still running, on a node that no longer needs them."""
    stale: tuple[str, ...] = ()
    """Pull pods of another revision (or of none): deleted by one request, selected by
    `selector`."""
    selector: str = ""
    """The label selector of exactly the `stale` pods (`stale_selector`)."""
    hold: Hold | None = None
    nodes: int = 0
    pulled: int = 0
    note: str = ""


@dataclass(frozen=True)
class NodeImages:
    """What one node needs pulled: image references and their pull Secrets."""

    images: tuple[str, ...]
    secrets: tuple[str, ...] = field(default_factory=tuple)


def pod_name(scaleset: str, node: str) -> str:
    """The pull pod of `scaleset` on `node` (a DNS label, whatever the node's name).

    >>> pod_name("web", "node-1")
    'web-pull-35971be6e9'
    """
    digest = hashlib.sha256(node.encode()).hexdigest()[:10]
    return f"{scaleset[:52]}-pull-{digest}"


def pulled_state(pod: Mapping[str, Any]) -> str:
    """Pulling, Pulled or Failed, from a pull pod's container statuses.

    >>> pulled_state({"status": {"phase": "Succeeded"}})
    'Pulled'
    >>> pulled_state({"status": {"phase": "Pending", "containerStatuses": [
    ...     {"state": {"waiting": {"reason": "ImagePullBackOff"}}}]}})
    'Failed'
    >>> pulled_state({"status": {"phase": "Pending"}})
    'Pulling'
    """
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Running"):
        return "Pulled"
    statuses = status.get("containerStatuses") or []
    expected = len((pod.get("spec") or {}).get("containers") or []) or 1
    if len(statuses) < expected:
        return "Pulling"
    states = []
    for s in statuses:
        waiting = (s.get("state") or {}).get("waiting")
        reason = (waiting or {}).get("reason") or ""
        if waiting is None or s.get("imageID") or reason not in PULLING:
            states.append("Pulled")
        elif reason in PULL_FAILED:
            states.append("Failed")
        else:
            states.append("Pulling")
    if "Pulling" in states:
        return "Pulling"
    return "Failed" if "Failed" in states else "Pulled"


def manifest(
    scaleset: Mapping[str, Any],
    template_spec: Mapping[str, Any],
    node: str,
    revision: str,
    needs: NodeImages,
) -> dict[str, Any]:
    """The pull pod of `scaleset` on `node` for `revision`."""
    name = scaleset["metadata"]["name"]
    secrets = [dict(s) for s in template_spec.get("imagePullSecrets") or []]
    for secret in needs.secrets:
        if all(s.get("name") != secret for s in secrets):
            secrets.append({"name": secret})
    containers = [
        {
            "name": f"pull-{i}",
            "image": image,
            "command": ["/bin/sh", "-c", "exit 0"],
            "imagePullPolicy": "IfNotPresent",
            "resources": {
                "requests": {"cpu": "1m", "memory": "8Mi"},
                "limits": {"cpu": "100m", "memory": "32Mi"},
            },
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "runAsNonRoot": True,
                "runAsUser": 65534,
                "readOnlyRootFilesystem": True,
            },
        }
        for i, image in enumerate(needs.images)
    ]
    spec: dict[str, Any] = {
        "nodeName": node,
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 0,
        "activeDeadlineSeconds": int(PULL_TIMEOUT.total_seconds()) * 2,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": containers,
    }
    if template_spec.get("tolerations"):
        spec["tolerations"] = list(template_spec["tolerations"])
    if secrets:
        spec["imagePullSecrets"] = secrets
    owner = {**inst.owner_reference(scaleset), "controller": False}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(name, node),
            "namespace": scaleset["metadata"]["namespace"],
            "labels": {PULL_LABEL: name, PULL_REVISION_LABEL: revision},
            "ownerReferences": [owner],
        },
        "spec": spec,
    }


def plan(
    scaleset: Mapping[str, Any],
    template_spec: Mapping[str, Any],
    revision: str | None,
    needs: Mapping[str, NodeImages],
    existing: Sequence[Mapping[str, Any]],
    now: datetime,
) -> PullPlan:
    """What to create and delete, and whether the upgrade to `revision` (None: no
    upgrade runs or is due) waits for its pulls. `needs` is node → what it must pull.

    >>> from datetime import UTC
    >>> t = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    >>> ss = {"metadata": {"name": "web", "namespace": "a", "uid": "u1"}}
    >>> first = plan(ss, {}, "1.0.1-abc", {"n1": NodeImages(("r/os@sha256:1",))}, [], t)
    >>> [m["spec"]["nodeName"] for m in first.create], first.hold.message
    (['n1'], 'pre-pulling 1.0.1 onto 1 node: 0 of 1 done')
    >>> done = dict(first.create[0], status={"phase": "Succeeded"})
    >>> plan(ss, {}, "1.0.1-abc", {"n1": NodeImages(("r/os@sha256:1",))}, [done], t).hold is None
    True
    >>> plan(ss, {}, None, {}, [done], t).stale
    ('web-pull-676b8bb84c',)
    """
    name = scaleset["metadata"]["name"]
    by_name = {p["metadata"]["name"]: p for p in existing}
    wanted = {pod_name(name, node): node for node in needs} if revision and needs else {}
    stale = tuple(sorted(n for n, p in by_name.items() if is_stale(p, revision, bool(wanted))))
    selector = stale_selector(name, revision, bool(wanted))
    if not wanted or revision is None:
        return PullPlan(stale=stale, selector=selector)
    delete = tuple(
        sorted(
            n for n, p in by_name.items() if n not in wanted and n not in stale and not finished(p)
        )
    )
    create = []
    pulled = failed = 0
    oldest: datetime | None = None
    for pod_id, node in sorted(wanted.items()):
        pod = by_name.get(pod_id)
        if pod is None or pod_id in stale:
            if pod is None:
                create.append(manifest(scaleset, template_spec, node, revision, needs[node]))
            continue
        state = pulled_state(pod)
        pulled += state == "Pulled"
        failed += state == "Failed"
        made = times.parse_or_none((pod.get("metadata") or {}).get("creationTimestamp"))
        if made is not None and (oldest is None or made < oldest):
            oldest = made
    total = len(wanted)
    version = inst.version_of(revision)
    nodes = f"{total} node" + ("s" if total != 1 else "")
    said = f"pre-pulling {version} onto {nodes}: {pulled} of {total} done" + (
        f", {failed} failed" if failed else ""
    )
    hold: Hold | None = None
    if pulled + failed >= total:
        said = f"{version} pre-pulled"
    elif oldest is not None and now - oldest >= PULL_TIMEOUT:
        said += f"; going on without the rest after {times.format(oldest + PULL_TIMEOUT)}"
    else:
        hold = Hold(reasons.PRE_PULLING, said, (oldest or now) + PULL_TIMEOUT)
    return PullPlan(tuple(create), delete, stale, selector, hold, total, pulled, said)


def is_stale(pod: Mapping[str, Any], revision: str | None, wanted: bool) -> bool:
    """Whether a pull pod is of no use any more: no pulls are wanted, or it pulls
    another revision. Exactly the pods `stale_selector` selects."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return not wanted or labels.get(PULL_REVISION_LABEL) != revision


def stale_selector(scaleset: str, revision: str | None, wanted: bool) -> str:
    """The label selector of a ScaleSet's stale pull pods (`is_stale`), for one delete
    of the collection.

    >>> stale_selector("web", "1.0.1-abc", True)
    'galleon.dev/prepull-for=web,galleon.dev/prepull-revision!=1.0.1-abc'
    >>> stale_selector("web", None, False)
    'galleon.dev/prepull-for=web'
    """
    if not wanted or revision is None:
        return f"{PULL_LABEL}={scaleset}"
    return f"{PULL_LABEL}={scaleset},{PULL_REVISION_LABEL}!={revision}"


def finished(pod: Mapping[str, Any]) -> bool:
    """A pod that ran to its end (it holds no slot on its node)."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def needs_of(
    pods: Iterable[Mapping[str, Any]],
    revision: str,
    image_of: Any,
) -> dict[str, NodeImages]:
    """Node → what it must pull for `revision`: the image each of its instances not on
    `revision` will run (`image_of(index)` → (reference, pull Secret)).

    >>> pods = [{"metadata": {"labels": {inst.INDEX_LABEL: "0", inst.REVISION_LABEL: "1.0.0-a"}},
    ...          "spec": {"nodeName": "n1"}}]
    >>> needs_of(pods, "1.0.1-a", lambda i: (f"r/os@sha256:{i}", "pull"))
    {'n1': NodeImages(images=('r/os@sha256:0',), secrets=('pull',))}
    """
    found: dict[str, tuple[set[str], set[str]]] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        node = (pod.get("spec") or {}).get("nodeName")
        try:
            index = int(labels.get(inst.INDEX_LABEL, ""))
        except ValueError:
            continue
        if not node or meta.get("deletionTimestamp") or labels.get(inst.REVISION_LABEL) == revision:
            continue
        image, secret = image_of(index)
        images, secrets = found.setdefault(node, (set(), set()))
        images.add(image)
        if secret:
            secrets.add(secret)
    return {
        node: NodeImages(tuple(sorted(images)), tuple(sorted(secrets)))
        for node, (images, secrets) in sorted(found.items())
    }
