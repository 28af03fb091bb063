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
    names = sorted(p["metadata"]["name"] for p in pods)
    newer = prepull.plan(SCALESET, TEMPLATE, "1.0.2-abc", NEEDS, pods, T0)
    assert sorted(newer.stale) == names and newer.delete == ()
    assert newer.selector == "galleon.dev/prepull-for=web,galleon.dev/prepull-revision!=1.0.2-abc"
    assert newer.hold is not None  # the old pods pulled another image
    idle = prepull.plan(SCALESET, TEMPLATE, None, {}, pods, T0)
    assert sorted(idle.stale) == names and idle.selector == "galleon.dev/prepull-for=web"
    assert idle.create == () and idle.hold is None


def test_the_stale_selector_selects_exactly_the_stale_pods() -> None:
    """The collection delete's selector, evaluated as the apiserver does (equality and
    inequality on labels), picks the pods `stale` names, and no other."""
    old = made("1.0.1-abc", T0, phase="Succeeded")  # on n1 and n2
    later = {"n3": NEEDS["n1"], "n4": NEEDS["n2"]}
    current = prepull.plan(SCALESET, TEMPLATE, "1.0.2-abc", later, [], T0).create
    other = [
        {
            **p,
            "metadata": {
                **p["metadata"],
                "name": "x-" + p["metadata"]["name"],
                "labels": {**p["metadata"]["labels"], prepull.PULL_LABEL: "api"},
            },
        }
        for p in old
    ]
    ours = [*old, *current]
    for revision, needs in (("1.0.2-abc", later), (None, {})):
        found = prepull.plan(SCALESET, TEMPLATE, revision, needs, ours, T0)
        assert found.stale, revision
        assert sorted(found.stale) == sorted(selected(found.selector, [*ours, *other]))


def test_a_node_no_longer_needed_keeps_a_finished_pull_pod_and_loses_a_running_one() -> None:
    """A finished pull pod holds no pod slot: it goes with the others at the end. One
    still running on a node whose instances are all upgraded is deleted on its own."""
    pods = sorted(made("1.0.1-abc", T0), key=lambda p: p["spec"]["nodeName"])
    pods[0]["status"] = {"phase": "Succeeded"}  # n1
    pods[1]["status"] = {"phase": "Pending"}  # n2
    only_n1 = {"n1": NEEDS["n1"]}
    found = prepull.plan(SCALESET, TEMPLATE, "1.0.1-abc", only_n1, pods, T0)
    assert found.delete == (pods[1]["metadata"]["name"],) and found.stale == ()
    pods[1]["status"] = {"phase": "Succeeded"}
    found = prepull.plan(SCALESET, TEMPLATE, "1.0.1-abc", only_n1, pods, T0)
    assert found.delete == () and found.stale == () and found.hold is None


def selected(selector: str, pods: list[dict[str, Any]]) -> list[str]:
    """The names of the pods a label selector of `key=value` and `key!=value`
    requirements selects (a missing label is not equal to any value)."""
    names = []
    for pod in pods:
        labels = pod["metadata"].get("labels") or {}
        match = True
        for requirement in selector.split(","):
            if "!=" in requirement:
                key, value = requirement.split("!=")
                match &= labels.get(key) != value
            else:
                key, value = requirement.split("=")
                match &= labels.get(key) == value
        if match:
            names.append(pod["metadata"]["name"])
    return names


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
