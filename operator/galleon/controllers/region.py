"""Region controller: the region's nodes and which of its registries answer.

Rules of this module: a Region is re-checked on every change and every
`region_check_interval` seconds; a check is cheap (one node list by label
selector, one `GET /v2/` per registry, in parallel, each bounded by a short
timeout). Ready is True when the region has at least one Ready node and every
registry answers; an unreachable registry makes it Ready=False with the
registries named, and posts an Event when that changes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
from lightkube.resources.core_v1 import Node

from galleon import GROUP, VERSION
from galleon.api.region import REGION_LABEL, RegistryEndpoint
from galleon.controllers import config, registries
from galleon.controllers.common import (
    condition_reason,
    conditions,
    kstatus,
    measured,
    rfc3339,
    utcnow,
)
from galleon.core import conditions as cond
from galleon.kube import client as kube
from galleon.metrics import REGION_REGISTRIES_REACHABLE

REGIONS = (GROUP, VERSION, "regions")


def _node_ready(node: Node) -> bool:
    conditions_ = (node.status.conditions or []) if node.status else []
    return any(c.type == "Ready" and c.status == "True" for c in conditions_)


async def _check(endpoint: RegistryEndpoint) -> dict[str, Any]:
    reachable, message = await registries.ping(endpoint)
    return {
        "name": endpoint.name,
        "url": endpoint.url,
        "reachable": reachable,
        "lastChecked": rfc3339(utcnow()),
        "message": message[:1024],
    }


@kopf.on.resume(*REGIONS)
@kopf.on.create(*REGIONS)
@kopf.on.update(*REGIONS)
@kopf.timer(*REGIONS, interval=config.current().region_check_interval)
async def reconcile_region(
    body: Any, spec: Any, status: Any, meta: Any, name: str, patch: Any, **_: Any
) -> None:
    with measured("region"):
        selector = dict(spec.get("nodeSelector") or {}) or {REGION_LABEL: name}
        nodes = [n async for n in kube.client().list(Node, labels=selector)]
        ready_nodes = sum(1 for n in nodes if _node_ready(n))
        endpoints = [RegistryEndpoint.model_validate(r) for r in spec.get("registries") or []]
        checks = await asyncio.gather(*(_check(e) for e in endpoints))
        reachable = [c for c in checks if c["reachable"]]
        REGION_REGISTRIES_REACHABLE.labels(name).set(len(reachable))
        down = [f"{c['name']} ({c['message']})" for c in checks if not c["reachable"]]
        if not endpoints:
            ready, reason, message = False, cond.NO_REGISTRIES, "the region lists no registries"
        elif down:
            ready, reason = False, cond.REGISTRIES_UNREACHABLE
            message = f"{len(reachable)}/{len(endpoints)} registries answer; down: " + ", ".join(
                down
            )
        elif ready_nodes == 0:
            ready, reason = False, cond.NO_NODES
            labels = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
            message = f"no Ready node matches {labels}"
        else:
            ready, reason = True, cond.RECONCILED
            message = f"{ready_nodes}/{len(nodes)} nodes Ready, {len(endpoints)} registries answer"
        if condition_reason(status, cond.READY) != ("True" if ready else "False", reason):
            (kopf.info if ready else kopf.warn)(body, reason=reason, message=message)
        patch.status["observedGeneration"] = meta.get("generation")
        patch.status["nodes"] = len(nodes)
        patch.status["readyNodes"] = ready_nodes
        patch.status["registries"] = checks
        patch.status["reachableRegistries"] = len(reachable)
        patch.status["totalRegistries"] = len(endpoints)
        patch.status["conditions"] = conditions(
            status,
            meta.get("generation"),
            # Registries and nodes come back by themselves: not ready is Reconciling.
            kstatus(ready, reason, message, progressing=not ready),
        )
