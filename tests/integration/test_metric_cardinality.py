"""The operator's /metrics against a tenant who names regions that do not exist, and
an admin who deletes a Region: a `region` label only ever carries the name of a
Region that exists, and a deleted Region's series go with it.

The real operator, real registries, a real apiserver; /metrics is scraped and parsed
as Prometheus would.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from prometheus_client.parser import text_string_to_metric_families

from galleon.kube.resources import Region
from galleon.metrics import UNKNOWN_REGION
from galleon.oci import RegistryClient
from galleon_testkit.images import TestImage, build_image, push_image
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import wait_for
from galleon_testkit.world import World

pytestmark = pytest.mark.integration
Sample = tuple[str, dict[str, str], float]


def scrape(url: str) -> list[Sample]:
    """Every galleon_* sample the operator serves now: (name, labels, value)."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("galleon_")
    ]


def regions_labelled(samples: list[Sample]) -> set[str]:
    return {labels["region"] for _, labels, _ in samples if "region" in labels}


def of(samples: list[Sample], name: str, **labels: str) -> list[Sample]:
    return [s for s in samples if s[0] == name and all(s[1].get(k) == v for k, v in labels.items())]


async def _push(registry: Registry, image: TestImage, tag: str) -> None:
    async with RegistryClient(registry.url) as client:
        await push_image(client, "sources/os", image, [tag])


@pytest.fixture
def world(kube: Client, namespace: str, registry_factory: Callable[[int], list[Registry]]) -> Any:
    made = World(kube, namespace, registry_factory(2))
    yield made
    made.cleanup()


def test_region_labels_name_only_regions_that_exist(
    world: World, operator: Any, kube: Client, tmp_path: Path
) -> None:
    east = world.region("east", world.rest[:1])
    world.parents(east)
    image = build_image(tmp_path / "v1", size=1 << 20, layers=1, seed=3)
    asyncio.run(_push(world.source, image, "1.0.0"))
    invented = [f"{world.namespace}-invented-{i}" for i in range(3)]
    world.version("os-1-0-0", "1.0.0", [{"name": east}, *({"name": r} for r in invented)])

    def settled() -> list[Sample]:
        samples = scrape(operator.metrics_url)
        copied = of(samples, "galleon_replication_bytes_total", region=east, mode="copied")
        unknown = of(samples, "galleon_replication_errors_total", reason="UnknownRegion")
        return samples if copied and copied[0][2] > 0 and unknown else []

    world.wait_state("os-1-0-0", "Failed", timeout=90)  # three of its regions do not exist
    samples = wait_for(settled, timeout=60, description="the copy to east and the errors counted")
    # The invented names label nothing; what concerns them is under one fixed value.
    assert regions_labelled(samples) & set(invented) == set()
    errors = of(samples, "galleon_replication_errors_total", reason="UnknownRegion")
    assert [labels["region"] for _, labels, _ in errors] == [UNKNOWN_REGION]
    assert errors[0][2] >= 3  # each invented region, once per failure
    states = of(samples, "galleon_image_version_replication_state", version="1.0.0")
    current = {labels["region"]: labels["state"] for _, labels, value in states if value == 1}
    assert current == {east: "Completed", UNKNOWN_REGION: "Failed"}
    assert of(samples, "galleon_region_registries_reachable", region=east)[0][2] == 1

    # A deleted Region takes every series labelled with it.
    kube.delete(Region, east)
    wait_for(
        lambda: east not in regions_labelled(scrape(operator.metrics_url)),
        timeout=30,
        description=f"the series of Region {east} removed",
    )
    # ...and do not come back: a new pass of the version (its spec changed: one more
    # invented region) counts what concerns the deleted Region under the fixed value.
    more = [*invented, f"{world.namespace}-invented-3"]
    world.version("os-1-0-0", "1.0.0", [{"name": east}, *({"name": region} for region in more)])

    def written() -> bool:
        status = world.status("os-1-0-0")
        lines = (status.get("replicationStatus") or {}).get("summary") or []
        return status.get("observedGeneration") == 2 and len(lines) == 5

    wait_for(written, timeout=60, description="the pass of generation 2 written")
    counted = errors[0][2] + 2  # the deleted Region, and the new invented one

    def recounted() -> list[Sample]:
        found = scrape(operator.metrics_url)
        unknown = of(
            found, "galleon_replication_errors_total", region=UNKNOWN_REGION, reason="UnknownRegion"
        )
        return found if unknown and unknown[0][2] >= counted else []

    after = wait_for(recounted, timeout=30, description="the new pass's errors counted")
    assert regions_labelled(after) & {east, *more} == set()
    states = of(after, "galleon_image_version_replication_state", version="1.0.0")
    current = {labels["region"]: labels["state"] for _, labels, value in states if value == 1}
    assert current == {UNKNOWN_REGION: "Failed"}
