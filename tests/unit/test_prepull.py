"""Pre-pull planning (`galleon.core.prepull`), with injected time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from galleon.core import prepull, times
from galleon.core.prepull import NodeImages

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SCALESET = {"metadata": {"name": "web", "namespace": "team-a", "uid": "u1"}}
NEEDS = {
    "n1": NodeImages(("r1/os@sha256:aa", "r2/os@sha256:aa"), ("pull",)),
    "n2": NodeImages(("r1/os@sha256:aa",)),
}
TEMPLATE = {
    "tolerations": [{"key": "dedicated", "operator": "Exists"}],
    "imagePullSecrets": [{"name": "base"}],
}


def made(revision: str, at: datetime, **status: Any) -> list[dict[str, Any]]:
    first = prepull.plan(SCALESET, TEMPLATE, revision, NEEDS, [], at)
    for pod in first.create:
        pod["metadata"]["creationTimestamp"] = times.format(at)
        pod["status"] = status
    return list(first.create)


def test_one_pull_pod_per_node_with_the_images_tolerations_and_secrets() -> None:
    found = prepull.plan(SCALESET, TEMPLATE, "1.0.1-abc", NEEDS, [], T0)
    by_node = {p["spec"]["nodeName"]: p for p in found.create}
    assert sorted(by_node) == ["n1", "n2"]
    n1 = by_node["n1"]["spec"]
    assert [c["image"] for c in n1["containers"]] == ["r1/os@sha256:aa", "r2/os@sha256:aa"]
    assert n1["tolerations"] == TEMPLATE["tolerations"]
    assert n1["imagePullSecrets"] == [{"name": "base"}, {"name": "pull"}]
    assert all(c["securityContext"]["runAsNonRoot"] for c in n1["containers"])
    assert n1["restartPolicy"] == "Never" and n1["automountServiceAccountToken"] is False
    owner = by_node["n1"]["metadata"]["ownerReferences"][0]
    assert owner["uid"] == "u1" and owner["controller"] is False
    assert "galleon.dev/scaleset" not in by_node["n1"]["metadata"]["labels"]
    assert found.hold is not None and found.hold.until == T0 + prepull.PULL_TIMEOUT
    assert found.hold.message == "pre-pulling 1.0.1 onto 2 nodes: 0 of 2 done"


def test_pulling_holds_until_every_node_pulled_or_failed() -> None:
    pods = sorted(made("1.0.1-abc", T0), key=lambda p: p["spec"]["nodeName"])
    pods[0]["status"] = {"phase": "Succeeded"}
    half = prepull.plan(SCALESET, TEMPLATE, "1.0.1-abc", NEEDS, pods, T0)
    assert half.create == () and half.hold is not None
    assert half.hold.message.endswith("1 of 2 done")
    pods[1]["status"] = {
        "phase": "Pending",
        "containerStatuses": [{"state": {"waiting": {"reason": "ErrImagePull"}}}],  # n2
    }
    done = prepull.plan(SCALESET, TEMPLATE, "1.0.1-abc", NEEDS, pods, T0)
    assert done.hold is None and done.pulled == 1


def test_pulls_that_run_out_of_time_are_not_waited_for() -> None:
    pods = made("1.0.1-abc", T0, phase="Pending")
    late = T0 + prepull.PULL_TIMEOUT - timedelta(seconds=1)
    assert prepull.plan(SCALESET, TEMPLATE, "1.0.1-abc", NEEDS, pods, late).hold is not None
    over = prepull.plan(SCALESET, TEMPLATE, "1.0.1-abc", NEEDS, pods, T0 + prepull.PULL_TIMEOUT)
    assert over.hold is None and "going on without the rest" in over.note


def test_a_new_revision_replaces_the_pull_pods_and_no_upgrade_removes_them() -> None:
    pods = made("1.0.1-abc", T0, phase="Succeeded")
    newer = prepull.plan(SCALESET, TEMPLATE, "1.0.2-abc", NEEDS, pods, T0)
    assert sorted(newer.delete) == sorted(p["metadata"]["name"] for p in pods)
    assert newer.hold is not None  # the old pods pulled another image
    idle = prepull.plan(SCALESET, TEMPLATE, None, {}, pods, T0)
    assert sorted(idle.delete) == sorted(p["metadata"]["name"] for p in pods)
    assert idle.create == () and idle.hold is None


def test_started_or_refused_containers_have_pulled() -> None:
    spec = {"spec": {"containers": [{}, {}]}}
    assert prepull.pulled_state({**spec, "status": {"phase": "Pending"}}) == "Pulling"
    running = {"state": {"running": {}}}
    refused = {"state": {"waiting": {"reason": "CreateContainerConfigError"}}}
    pulling = {"state": {"waiting": {"reason": "ContainerCreating"}}}
    status = {"phase": "Pending", "containerStatuses": [running, refused]}
    assert prepull.pulled_state({**spec, "status": status}) == "Pulled"
    status = {"phase": "Pending", "containerStatuses": [running, pulling]}
    assert prepull.pulled_state({**spec, "status": status}) == "Pulling"
