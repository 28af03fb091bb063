"""The ScaleSets' pod watches (`galleon.controllers.scaleset.follow`) against the real
apiserver: a pod wakes the ScaleSet its label names, and only that one; pods of no
ScaleSet, and pods of namespaces the operator does not serve, wake nothing; the pod
cache holds each ScaleSet's pods as its LIST and watch showed them.

No operator runs here: the test runs `follow_pods` with its own `Wakeups`, and makes
the pods with the admin client. Events of one watch come in order, so a pod that must
not wake anything is made before one that must, and checked once the second woke.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from lightkube import Client, codecs
from lightkube.resources.core_v1 import Pod

from galleon import clock
from galleon.controllers.scaleset.follow import follow_pods
from galleon.controllers.shared import Wakeups
from galleon.core import instances as inst
from galleon.core import prepull
from galleon.core.podcache import PodCache
from galleon.kube import client as galleon_client

pytestmark = pytest.mark.integration
TIMEOUT = 60.0


@pytest.fixture
def closed_client(operator_client: None) -> Iterator[None]:
    """The operator's client, closed after the test (its watches ran on this loop)."""
    yield
    asyncio.run(galleon_client.close())


def pod(name: str, namespace: str, labels: dict[str, str]) -> Any:
    return codecs.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "containers": [{"name": "c", "image": "registry.invalid/none:1"}],
                "nodeName": "no-such-node",  # never scheduled, never run
            },
        }
    )


async def following(
    kube: Client,
    scope: Sequence[str],
    keys: Sequence[tuple[str, str]],
    steps: Any,
    cache: PodCache | None = None,
) -> dict[tuple[str, str], asyncio.Event]:
    """Run `follow_pods` over `scope` while `steps(events)` runs (in a thread: it uses
    the admin client); the wake-up events of `keys`."""
    wakeups = Wakeups()
    events = {key: wakeups.register(key) for key in keys}
    task = asyncio.create_task(follow_pods(wakeups, scope, cache))
    try:
        await asyncio.sleep(0)  # the watches start
        await steps(events)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return events


async def woken(event: asyncio.Event, what: str) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout=TIMEOUT)
    except TimeoutError:
        raise AssertionError(f"{what}: not woken within {TIMEOUT:.0f}s") from None


def test_a_pod_wakes_the_scaleset_its_label_names_and_no_other(
    closed_client: None, kube: Client, namespace: str
) -> None:
    web, api, db = (namespace, "web"), (namespace, "api"), (namespace, "db")

    async def steps(events: dict[tuple[str, str], asyncio.Event]) -> None:
        # The watch may start after a create; a pod made before it is sent as ADDED
        # when it starts, so either way the first wake-up comes.
        await asyncio.to_thread(kube.create, pod("plain", namespace, {"app": "db"}))
        await asyncio.to_thread(kube.create, pod("web-0", namespace, {inst.SCALESET_LABEL: "web"}))
        await woken(events[web], "an instance of web")
        assert not events[api].is_set() and not events[db].is_set()
        events[web].clear()
        await asyncio.to_thread(
            kube.create, pod("api-pull-1", namespace, {prepull.PULL_LABEL: "api"})
        )
        await woken(events[api], "a pull pod of api")
        await asyncio.to_thread(kube.delete, Pod, "web-0", namespace=namespace, grace_period=0)
        await woken(events[web], "the deletion of an instance of web")
        assert not events[db].is_set(), "a pod of no ScaleSet woke one"

    asyncio.run(following(kube, [namespace], [web, api, db], steps))


def test_pods_of_namespaces_the_operator_does_not_serve_wake_nothing(
    closed_client: None, kube: Client, namespace: str, second_namespace: str
) -> None:
    """A pattern scope (one cluster-wide watch, matched here) with an exclusion."""
    mine, theirs = (namespace, "web"), (second_namespace, "web")
    sync = (namespace, "sync")
    scope = [f"{namespace}*", f"!{second_namespace}"]

    async def steps(events: dict[tuple[str, str], asyncio.Event]) -> None:
        # Once this pod woke its ScaleSet, the watch runs: what follows comes in order.
        await asyncio.to_thread(
            kube.create, pod("sync-0", namespace, {inst.SCALESET_LABEL: "sync"})
        )
        await woken(events[sync], "the first pod")
        labels = {inst.SCALESET_LABEL: "web"}
        await asyncio.to_thread(kube.create, pod("web-0", second_namespace, labels))
        await asyncio.to_thread(kube.create, pod("web-0", namespace, labels))
        await woken(events[mine], "an instance in a served namespace")
        assert not events[theirs].is_set(), "a pod of an excluded namespace woke its ScaleSet"

    asyncio.run(following(kube, scope, [mine, theirs, sync], steps))


async def until(event: asyncio.Event, holds: Any, what: str) -> None:
    """Wait for wake-ups until `holds()` (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not holds():
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(f"{what}: not so within {TIMEOUT:.0f}s")
        event.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=left)


def test_the_cache_holds_each_scalesets_pods_from_its_list_and_its_watch(
    closed_client: None, kube: Client, namespace: str, second_namespace: str
) -> None:
    """A pattern scope (the cluster-wide LIST and watch): pods made before the watch
    come from the LIST, later ones from the watch; a deleted pod leaves, a relabelled
    one moves, pods of no ScaleSet and of an excluded namespace are not kept."""
    web, api = (namespace, "web"), (namespace, "api")
    cache = PodCache(monotonic=clock.monotonic)
    scope = [f"{namespace}*", f"!{second_namespace}"]
    made = kube.create(pod("web-0", namespace, {inst.SCALESET_LABEL: "web"}))
    kube.create(pod("plain", namespace, {"app": "web"}))
    kube.create(pod("web-0", second_namespace, {inst.SCALESET_LABEL: "web"}))

    def names(key: tuple[str, str]) -> list[str] | None:
        view = cache.view(*key)
        return None if view is None else sorted(p["metadata"]["name"] for p in view.pods)

    async def steps(events: dict[tuple[str, str], asyncio.Event]) -> None:
        await until(
            events[web], lambda: cache.synced_at(namespace) is not None, "the LIST observed"
        )
        view = cache.view(*web)
        assert view is not None
        assert [p["metadata"]["name"] for p in view.pods] == ["web-0"]
        assert made.metadata is not None and made.metadata.uid in view.seen
        assert names((second_namespace, "web")) == [], "a pod of an excluded namespace was kept"
        await asyncio.to_thread(kube.create, pod("web-1", namespace, {inst.SCALESET_LABEL: "web"}))
        await until(events[web], lambda: names(web) == ["web-0", "web-1"], "web-1 kept")
        await asyncio.to_thread(kube.delete, Pod, "web-0", namespace=namespace, grace_period=0)
        await until(events[web], lambda: names(web) == ["web-1"], "web-0 gone")
        await asyncio.to_thread(
            kube.patch,
            Pod,
            "web-1",
            {"metadata": {"labels": {inst.SCALESET_LABEL: "api"}}},
            namespace=namespace,
        )
        await until(events[api], lambda: names(api) == ["web-1"], "web-1 moved to api")
        assert names(web) == []
        assert len(cache) == 1, "a pod of no ScaleSet was kept"

    asyncio.run(following(kube, scope, [web, api], steps, cache))
