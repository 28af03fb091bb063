"""Fake nodes, one or more per region, that kwok keeps alive.

Rules of this module: a node's name, labels and size follow from its region and
index alone (`kwok-<region>-<index>`), so tests can name nodes without asking the
API; every node carries the well-known topology labels the scheduler and the
operator key on (`topology.kubernetes.io/region`, `.../zone`,
`kubernetes.io/hostname`); and a node counts as usable only when it is Ready
*and* the `node.kubernetes.io/not-ready` taint that admission adds to every new
node has been removed by kube-controller-manager.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Node

from galleon.api.region import REGION_LABEL
from galleon_testkit.waiting import wait_for

ZONE_LABEL = "topology.kubernetes.io/zone"
HOSTNAME_LABEL = "kubernetes.io/hostname"
FAKE_NODE_LABEL = "galleon.test/fake-node"
ZONES_PER_REGION = 3
NODE_SIZE = {"cpu": "32", "memory": "128Gi", "pods": "110"}


def node_name(region: str, index: int) -> str:
    """Example: node_name("westcentralus", 0) == "kwok-westcentralus-0"."""
    return f"kwok-{region}-{index}"


def zone_of(region: str, index: int) -> str:
    """Nodes of a region spread over zones 1..3. Example: zone_of("eastus", 4) == "eastus-2"."""
    return f"{region}-{index % ZONES_PER_REGION + 1}"


def fake_node(region: str, index: int) -> dict[str, Any]:
    """The Node object for node `index` of `region` (status is kept on create)."""
    name = node_name(region, index)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                HOSTNAME_LABEL: name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "galleon.fake",
                REGION_LABEL: region,
                ZONE_LABEL: zone_of(region, index),
                FAKE_NODE_LABEL: "true",
            },
        },
        "status": {"allocatable": dict(NODE_SIZE), "capacity": dict(NODE_SIZE)},
    }


def create_nodes(client: Client, regions: Mapping[str, int]) -> list[str]:
    """Create `regions[r]` nodes in each region r (existing ones are left as they are)."""
    names = []
    for region, count in regions.items():
        for index in range(count):
            try:
                client.create(codecs.from_dict(fake_node(region, index)))
            except ApiError as error:
                # Why: a restarted harness against a kept etcd finds its nodes already there.
                if error.status.code != 409:
                    raise
            names.append(node_name(region, index))
    return names


def is_usable(node: Node) -> bool:
    """Ready=True and no not-ready/unreachable taint left."""
    conditions = (node.status.conditions or []) if node.status else []
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    taints = (node.spec.taints or []) if node.spec else []
    blocked = any(t.key.startswith("node.kubernetes.io/") for t in taints)
    return ready and not blocked


def wait_nodes_usable(client: Client, names: list[str], *, timeout: float) -> None:
    """Wait until every named node is Ready and untainted."""

    def unusable() -> list[str]:
        return [name for name in names if not is_usable(client.get(Node, name))]

    wait_for(
        lambda: not unusable(),
        timeout=timeout,
        description=f"nodes {names} to be Ready without not-ready taints",
    )
