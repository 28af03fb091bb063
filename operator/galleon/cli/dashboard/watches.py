"""The dashboard's view of the cluster: one list-then-watch per kind, kept in a
`Store` that tells the page's streams when anything changed.

Rules of this module:
- Reads only: list and watch requests with the user's kubeconfig, nothing else.
- One watch request lasts at most `WATCH_SECONDS` on the server and
  `WATCH_SECONDS + WATCH_GRACE_SECONDS` here (a silent server cannot stall the page);
  the next one starts from the last resourceVersion seen. A 410 (too old) lists again.
- A failing watch (forbidden, unreachable) is one sentence in `Store.problems`, shown
  on the page, and is retried every `RETRY_SECONDS`; the other kinds go on.
- `Store.version` grows on every change that alters what the page shows; the page's
  document is computed once per version (`Store.document`), however many browsers
  watch it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
from lightkube import ALL_NS, AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Event, Pod

from galleon.cli.cluster import WATCH_GRACE_SECONDS, as_dict
from galleon.cli.dashboard.model import Observed, is_galleon_event, page
from galleon.core.instances import SCALESET_LABEL
from galleon.kube.resources import Gallery, ImageDefinition, ImageVersion, ScaleSet

WATCH_SECONDS = 60
"""How long one watch request lasts on the API server (`timeoutSeconds`)."""
RETRY_SECONDS = 5.0
"""How long a failing watch waits before it lists again."""


@dataclass(frozen=True)
class Source:
    """One kind the dashboard watches.

    Example: `Source("pods", Pod, labels={SCALESET_LABEL: None})` watches the pods
    that carry the label galleon.dev/scaleset, whatever its value.
    """

    field: str
    """The `Observed` field its objects fill (and the kind's name in problems)."""
    resource: Any
    labels: Mapping[str, str | None] | None = None
    """A label selector (None as a value: the label exists)."""
    keep: Callable[[Mapping[str, Any]], bool] | None = None
    """Objects for which this is False are dropped as they arrive."""


SOURCES = (
    Source("galleries", Gallery),
    Source("definitions", ImageDefinition),
    Source("versions", ImageVersion),
    Source("scalesets", ScaleSet),
    Source("pods", Pod, labels={SCALESET_LABEL: None}),
    Source("events", Event, keep=is_galleon_event),
)
NAMES = {
    "galleries": "galleries",
    "definitions": "imagedefinitions",
    "versions": "imageversions",
    "scalesets": "scalesets",
    "pods": "pods",
    "events": "events",
}
"""How a problem names each source's kind (as kubectl would)."""


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _strip(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without what the page never shows and that changes on every write
    (managed fields), so that a change of those alone is not a change of the page."""
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    return {**obj, "metadata": meta}


class Store:
    """What the watches have seen, by source, and a version that grows on each change."""

    def __init__(self, scope: str, sources: tuple[Source, ...] = SOURCES) -> None:
        self.scope = scope
        self.sources = sources
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
            s.field: {} for s in sources
        }
        self.problems: dict[str, str] = {}
        self.listed: set[str] = set()
        self.version = 0
        self._changed = asyncio.Event()
        self._document: tuple[int, str] | None = None

    # -- written by the watches

    def _bump(self) -> None:
        self.version += 1
        # Wake whoever waits on the event of the previous version; later waiters get
        # a new one.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def replace(self, field: str, objects: list[dict[str, Any]]) -> None:
        fresh = {_key(o): _strip(o) for o in objects}
        changed = fresh != self.objects[field] or field not in self.listed
        changed = changed or field in self.problems
        self.objects[field] = fresh
        self.listed.add(field)
        self.problems.pop(field, None)
        if changed:
            self._bump()

    def put(self, field: str, obj: dict[str, Any]) -> None:
        stripped = _strip(obj)
        key = _key(stripped)
        if self.objects[field].get(key) != stripped:
            self.objects[field][key] = stripped
            self._bump()

    def remove(self, field: str, obj: Mapping[str, Any]) -> None:
        if self.objects[field].pop(_key(obj), None) is not None:
            self._bump()

    def fail(self, field: str, message: str) -> None:
        if self.problems.get(field) != message:
            self.problems[field] = message
            self._bump()

    # -- read by the server

    def observed(self) -> Observed:
        values = {field: tuple(found.values()) for field, found in self.objects.items()}
        return Observed(
            scope=self.scope,
            problems=tuple(self.problems[f] for f in sorted(self.problems)),
            # A refused watch counts as done loading: the page shows why it is empty.
            synced=all(s.field in self.listed or s.field in self.problems for s in self.sources),
            **values,
        )

    def document(self) -> tuple[int, str]:
        """The page's document as JSON, and the version it is of (computed once per
        version)."""
        if self._document is None or self._document[0] != self.version:
            self._document = (self.version, json.dumps(page(self.observed())))
        return self._document

    async def wait_after(self, version: int, seconds: float) -> bool:
        """Wait until `version` is not the latest (True) or `seconds` passed (False)."""
        if self.version != version:
            return True
        try:
            async with asyncio.timeout(seconds):
                await self._changed.wait()
        except TimeoutError:
            return False
        return True


def _problem(source: Source, error: BaseException) -> str:
    name = NAMES.get(source.field, source.field)
    if isinstance(error, ApiError):
        code = getattr(error.status, "code", None)
        if code in (401, 403):
            return f"watch of {name}: not allowed: {error.status.message}"
        return f"watch of {name}: the API server refused it ({code}): {error.status.message}"
    if isinstance(error, httpx2.HTTPStatusError):
        return f"watch of {name}: the API server answered {error.response.status_code}"
    reason = str(error) or type(error).__name__
    return f"watch of {name}: cannot reach the API server: {reason}"


async def follow(client: AsyncClient, source: Source, store: Store, namespace: str) -> None:
    """Keep `store`'s objects of `source` equal to the cluster's, until cancelled."""
    where = ALL_NS if namespace == ALL_NS else namespace
    labels: dict[str, Any] | None = dict(source.labels) if source.labels else None

    def kept(obj: Any) -> dict[str, Any] | None:
        found = as_dict(obj)
        return found if source.keep is None or source.keep(found) else None

    while True:
        try:
            listing = client.list(source.resource, namespace=where, labels=labels)
            items = [k for k in [kept(o) async for o in listing] if k is not None]
            store.replace(source.field, items)
            version = listing.resourceVersion
            while True:
                try:
                    async with asyncio.timeout(WATCH_SECONDS + WATCH_GRACE_SECONDS):
                        async for kind, obj in client.watch(
                            source.resource,
                            namespace=where,
                            labels=labels,
                            resource_version=version,
                            server_timeout=WATCH_SECONDS,
                        ):
                            found = as_dict(obj)
                            version = str((found.get("metadata") or {}).get("resourceVersion"))
                            if kind == "DELETED":
                                store.remove(source.field, found)
                            elif source.keep is None or source.keep(found):
                                store.put(source.field, found)
                except TimeoutError:
                    continue  # the request outlived its timeout: watch again from `version`
        except asyncio.CancelledError:
            raise
        except ApiError as error:
            if getattr(error.status, "code", None) == 410:
                continue  # the version is too old to watch from: list again at once
            store.fail(source.field, _problem(source, error))
        except (httpx2.HTTPError, OSError) as error:
            store.fail(source.field, _problem(source, error))
        await asyncio.sleep(RETRY_SECONDS)
