"""The pod cache (`galleon.core.podcache`): what a pass reads instead of a LIST."""

from __future__ import annotations

from typing import Any

from galleon.core import instances as inst
from galleon.core.observed import observe, slim
from galleon.core.podcache import ALL, SEEN_LIMIT, PodCache


def pod(name: str, uid: str, owner: str | None, namespace: str = "a", **meta: Any) -> Any:
    labels = {inst.SCALESET_LABEL: owner} if owner else {}
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "labels": labels,
            "managedFields": [{"manager": "x"}],
            **meta,
        },
        "spec": {"nodeName": "n1", "containers": [{"name": "os"}]},
        "status": {"phase": "Running"},
    }


def names(cache: PodCache, namespace: str, owner: str) -> list[str]:
    view = cache.view(namespace, owner)
    assert view is not None
    return sorted(p["metadata"]["name"] for p in view.pods)


def test_a_scope_is_read_only_from_its_list_until_its_watch_fails() -> None:
    cache = PodCache(monotonic=lambda: 0.0)
    cache.event("ADDED", pod("web-0", "u0", "web"))
    assert cache.view("a", "web") is None  # no LIST observed yet: the pass LISTs
    cache.relisted("a", [pod("web-1", "u1", "web")], listed_at=3.0)
    assert names(cache, "a", "web") == ["web-1"]  # the LIST replaced what it held
    assert cache.view("b", "web") is None  # another namespace: not this scope's
    cache.lost("a")
    assert cache.view("a", "web") is None
    cache.relisted("a", [], listed_at=9.0)
    view = cache.view("a", "web")
    assert view is not None and view.pods == () and view.synced_at == 9.0


def test_a_cluster_wide_scope_holds_every_namespace() -> None:
    cache = PodCache(monotonic=lambda: 0.0)
    cache.relisted(
        ALL, [pod("web-0", "u0", "web", "a"), pod("web-0", "v0", "web", "b")], listed_at=1.0
    )
    assert names(cache, "a", "web") == ["web-0"] and names(cache, "b", "web") == ["web-0"]
    assert len(cache) == 2


def test_pods_are_kept_slim_and_by_the_scaleset_their_label_names() -> None:
    cache = PodCache(monotonic=lambda: 0.0)
    cache.relisted("a", [], listed_at=1.0)
    cache.event("ADDED", pod("x-0", "u0", "web"))
    cache.event("MODIFIED", pod("x-0", "u0", "api"))  # relabelled: it moves
    assert names(cache, "a", "web") == [] and names(cache, "a", "api") == ["x-0"]
    view = cache.view("a", "api")
    assert view is not None
    assert "managedFields" not in view.pods[0]["metadata"]
    assert view.pods[0]["spec"] == {"nodeName": "n1"}
    cache.event("MODIFIED", pod("x-0", "u0", None))  # no label: held by none
    assert names(cache, "a", "api") == [] and len(cache) == 0


def test_a_pod_that_came_and_went_between_two_passes_was_seen() -> None:
    cache = PodCache(monotonic=lambda: 0.0)
    cache.relisted("a", [], listed_at=1.0)
    assert cache.view("a", "web") is not None  # the previous pass
    cache.event("ADDED", pod("web-0", "u0", "web"))
    cache.event("DELETED", pod("web-0", "u0", "web"))
    view = cache.view("a", "web")
    assert view is not None and view.pods == () and view.seen == {"u0"}
    again = cache.view("a", "web")
    assert again is not None and again.seen == frozenset()  # a view takes what it showed


def test_a_delete_of_a_successor_does_not_remove_the_pod_listed_later() -> None:
    cache = PodCache(monotonic=lambda: 0.0)
    cache.relisted("a", [pod("web-0", "u0", "web")], listed_at=1.0)
    cache.event("DELETED", pod("web-0", "u0", "web"))
    cache.event("ADDED", pod("web-0", "u1", "web", deletionTimestamp=None))
    view = cache.view("a", "web")
    assert view is not None
    assert [p["metadata"]["uid"] for p in view.pods] == ["u1"]
    assert view.seen == {"u0", "u1"}


def test_seen_uids_are_bounded_and_dropping_them_acts_as_a_relist() -> None:
    now = [1.0]
    cache = PodCache(monotonic=lambda: now[0])
    cache.relisted("a", [], listed_at=1.0)
    for i in range(SEEN_LIMIT):
        cache.event("ADDED", pod(f"web-{i}", f"u{i}", "web"))
    now[0] = 7.0
    cache.event("ADDED", pod("web-x", "ux", "web"))
    view = cache.view("a", "web")
    assert view is not None
    assert view.seen == {"ux"} and view.synced_at == 7.0
    assert len(view.pods) == SEEN_LIMIT + 1


def test_forget_drops_what_was_seen_for_a_scaleset_that_is_gone() -> None:
    cache = PodCache(monotonic=lambda: 0.0)
    cache.relisted("a", [], listed_at=1.0)
    cache.event("ADDED", pod("web-0", "u0", "web"))
    cache.event("DELETED", pod("web-0", "u0", "web"))
    cache.forget("a", "web")
    view = cache.view("a", "web")
    assert view is not None and view.seen == frozenset()


def test_each_pod_is_observed_once_as_it_arrives_and_again_when_it_changes() -> None:
    cache = PodCache(monotonic=lambda: 0.0)
    ready = {
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-07T06:00:00Z"}
        ]
    }
    labels = {inst.SCALESET_LABEL: "web", inst.INDEX_LABEL: "0", inst.REVISION_LABEL: "1.0.0-a"}
    starting = pod("web-0", "u0", None, labels=labels)
    cache.relisted("a", [starting, pod("stray", "u9", "web")], listed_at=1.0)
    view = cache.view("a", "web")
    assert view is not None
    by_name = dict(zip((p["metadata"]["name"] for p in view.pods), view.instances, strict=True))
    assert by_name["stray"] is None  # no index label: no instance
    first = by_name["web-0"]
    assert first is not None and first == observe(slim(starting)) and not first.ready
    again = cache.view("a", "web")
    assert again is not None and any(i is first for i in again.instances)  # kept, not redone
    cache.event("MODIFIED", {**starting, "status": {"phase": "Running", **ready}})
    changed = cache.view("a", "web")
    assert changed is not None
    now = next(i for i in changed.instances if i is not None)
    assert now.ready and now.ready_since is not None and now.index == 0
