"""Following the ScaleSets' pods: one watch per label, feeding the pod cache.

Rules of this module:
- The apiserver filters: each watch selects by one label (the instances'
  `SCALESET_LABEL`, the pull pods' `PULL_LABEL`), so no other pod of the cluster
  reaches the operator, and an event only wakes the daemon of the ScaleSet the label
  names.
- The instances' watch is an informer's: one LIST (in pages of `LIST_PAGE` pods),
  then a watch from the LIST's resourceVersion, every pod kept slim in the pod cache
  (`galleon.core.podcache`) that passes read instead of LISTing. The pull pods' watch
  only wakes: nothing is kept of them.
- Pods arrive as plain dicts (`PodBody`), never parsed into typed models.
- The operator's namespaces: one watch per namespace it was given, or one across the
  cluster; a namespace given as a pattern (`team-*`) is matched here, on a
  cluster-wide watch.
- A watch that fails is started again after a capped backoff (with a new LIST for
  the instances); the cache of its scope is not synced meanwhile, so passes LIST
  their pods themselves, and every ScaleSet is woken once it runs again. A watch
  that ends cleanly (the server's timeout) goes on from its resourceVersion without
  a gap (lightkube's watch loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
from collections.abc import AsyncIterator, Callable, Sequence

from lightkube import ALL_NS, operators

from galleon import clock
from galleon.controllers.loop import backoff
from galleon.controllers.shared import Wakeups
from galleon.core import instances as inst
from galleon.core import podcache, prepull
from galleon.core.observed import slim
from galleon.core.podcache import PodCache
from galleon.kube import client as kube
from galleon.kube.resources import PodBody
from galleon.metrics import KUBE_REQUESTS

logger = logging.getLogger(__name__)
LABELS = (inst.SCALESET_LABEL, prepull.PULL_LABEL)
"""The labels that name a pod's ScaleSet: its instances', and its pull pods'."""
SERVER_TIMEOUT_SECONDS = 300
LIST_PAGE = 500
"""Pods per page of the instances' LIST (a fleet's LIST is never one response)."""
HEALTHY_SECONDS = 60.0
"""A watch that ran this long before failing starts its backoff over."""


def is_pattern(namespace: str) -> bool:
    """Whether a namespace the operator was given is a pattern (kopf's globs).

    >>> is_pattern("team-a"), is_pattern("team-*"), is_pattern("!kube-system")
    (False, True, True)
    """
    return any(c in namespace for c in "*?[!")


def namespace_filter(namespaces: Sequence[str]) -> Callable[[str], bool]:
    """Whether a namespace is one the operator serves: kopf's patterns, where a
    leading `!` excludes.

    >>> serves = namespace_filter(["team-*", "!team-x"])
    >>> serves("team-a"), serves("team-x"), serves("ops")
    (True, False, False)
    """
    include = [n for n in namespaces if not n.startswith("!")]
    exclude = [n[1:] for n in namespaces if n.startswith("!")]

    def serves(namespace: str) -> bool:
        if any(fnmatch.fnmatchcase(namespace, p) for p in exclude):
            return False
        return not include or any(fnmatch.fnmatchcase(namespace, p) for p in include)

    return serves


def watch_scopes(namespaces: Sequence[str]) -> tuple[list[str], Callable[[str], bool]]:
    """(the namespaces to watch, ALL_NS for the cluster; which of their events count).

    >>> watch_scopes(["a", "b"])[0], watch_scopes([])[0], watch_scopes(["a", "t-*"])[0]
    (['a', 'b'], ['*'], ['*'])
    """
    if namespaces and not any(map(is_pattern, namespaces)):
        return list(namespaces), lambda _: True
    return [ALL_NS], namespace_filter(namespaces) if namespaces else (lambda _: True)


async def follow_pods(
    wakeups: Wakeups, namespaces: Sequence[str], cache: PodCache | None = None
) -> None:
    """Wake a ScaleSet's daemon whenever one of its pods changes, and keep its
    instances' pods in `cache`, until cancelled."""
    scopes, serves = watch_scopes(namespaces)
    async with asyncio.TaskGroup() as group:
        for namespace in scopes:
            for label in LABELS:
                kept = cache if label == inst.SCALESET_LABEL else None
                group.create_task(follow(wakeups, namespace, label, serves, kept))


async def follow(
    wakeups: Wakeups,
    namespace: str,
    label: str,
    serves: Callable[[str], bool],
    cache: PodCache | None = None,
) -> None:
    """One watch (pods with `label`, in `namespace`), started again whenever it fails;
    with a `cache`, each start LISTs first and the cache is kept."""
    scope = podcache.ALL if namespace == ALL_NS else namespace
    failures = 0
    while True:
        started = clock.monotonic()
        try:
            version = None
            if cache is not None:
                version = await relist(cache, scope, namespace, label, serves)
                for key in wakeups.registered():
                    wakeups.wake(*key)
            async for kind, pod in kube.client().watch(
                PodBody,
                namespace=namespace,
                labels={label: operators.exists()},
                server_timeout=SERVER_TIMEOUT_SECONDS,
                resource_version=version,
            ):
                metadata = pod.get("metadata") or {}
                owner = (metadata.get("labels") or {}).get(label)
                where = metadata.get("namespace")
                if where and serves(where):
                    if cache is not None:
                        cache.event(kind, pod)
                    if owner:
                        wakeups.wake(where, owner)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if cache is not None:
                cache.lost(scope)
            failures = 1 if clock.monotonic() - started >= HEALTHY_SECONDS else failures + 1
            wait = backoff(failures)
            logger.warning(
                "the watch of pods labelled %s failed (%s); again in %.1fs", label, error, wait
            )
            await asyncio.sleep(wait)
        # A gap: whatever changed meanwhile was not seen.
        for key in wakeups.registered():
            wakeups.wake(*key)


async def relist(
    cache: PodCache, scope: str, namespace: str, label: str, serves: Callable[[str], bool]
) -> str:
    """LIST the pods with `label` into the cache (in pages); the resourceVersion its
    watch goes on from."""
    listed_at = clock.monotonic()
    listing = kube.client().list(
        PodBody, namespace=namespace, labels={label: operators.exists()}, chunk_size=LIST_PAGE
    )
    pods, listed = [], 0
    async for p in listing:
        listed += 1
        if serves((p.get("metadata") or {}).get("namespace") or ""):
            pods.append(slim(p))
    cache.relisted(scope, pods, listed_at=listed_at)
    KUBE_REQUESTS.labels("scaleset").inc(1 + listed // LIST_PAGE)  # its pages
    return listing.resourceVersion


@contextlib.asynccontextmanager
async def following_pods(
    wakeups: Wakeups, namespaces: Sequence[str], cache: PodCache | None = None
) -> AsyncIterator[asyncio.Task[None]]:
    """Follow the pods while the block runs (the operator's lifetime)."""
    task = asyncio.create_task(follow_pods(wakeups, namespaces, cache), name="follow pods")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
