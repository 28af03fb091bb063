"""The test kit's WAN (`galleon_testkit.wan`): regions as network namespaces behind
shaped links, registries inside them. What the WAN replication benchmark
(`hack/bench_wan_replication.py`) stands on: a region's link really carries no more
than its rate, the inside of a region and the hub's source are not held back by
another region's link, and nothing is left behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from galleon.oci import RegistryClient, Target, copy_image_to_many
from galleon_testkit.cluster_fixtures import unavailable
from galleon_testkit.images import build_image, push_image
from galleon_testkit.registry import Registry
from galleon_testkit.wan import Wan, WanUnavailable

pytestmark = pytest.mark.integration
MBIT = 40.0
SIZE = 8 << 20


@pytest.fixture
def wan(tmp_path: Path) -> Iterator[Wan]:
    made = Wan(tmp_path / "wan")
    try:
        made.start()
    except WanUnavailable as error:
        unavailable(str(error))
    yield made
    made.stop()
    assert made.leftovers() == []


def link_seconds(size: int, mbit: float) -> float:
    return size * 8 / (mbit * 1e6)


def test_a_region_link_carries_no_more_than_its_rate_and_stops_at_its_region(
    wan: Wan, tmp_path: Path
) -> None:
    slow = wan.region("slow", mbit=MBIT, addresses=2)
    fast = wan.region("fast", mbit=10 * MBIT)
    registries = [
        Registry(tmp_path / "source", address=wan.hub_address, netns=wan.hub),
        Registry(tmp_path / "slow-a", address=slow.addresses[0], netns=slow.netns),
        Registry(tmp_path / "slow-b", address=slow.addresses[1], netns=slow.netns),
        Registry(tmp_path / "fast", address=fast.address, netns=fast.netns),
    ]
    for registry in registries:
        registry.start()
    try:
        source, slow_a, slow_b, fast_one = registries
        image = build_image(tmp_path / "image", size=SIZE, layers=2, seed=3)

        async def copy(destinations: list[Registry]) -> float:
            async with RegistryClient(source.url) as client:
                await push_image(client, "os", image, ["1.0.0"])
            src = RegistryClient(source.url)
            targets = [Target(RegistryClient(d.url), "os", ("1.0.0",)) for d in destinations]
            began = time.monotonic()
            results = await copy_image_to_many(src, "os", "1.0.0", targets)
            took = time.monotonic() - began
            for target in targets:
                await target.client.close()
            await src.close()
            assert not [r for r in results if isinstance(r, Exception)], results
            return took

        # From the host (where the operator runs) to two replicas of the slow region:
        # the image crosses its link twice, so at least twice the link's time.
        twice = asyncio.run(copy([slow_a, slow_b]))
        assert twice >= 0.9 * 2 * link_seconds(image.size, MBIT), twice
        # The fast region is not held to the slow one's rate (10x the rate: well
        # under the slow link's time for the same bytes, even on a busy machine).
        quick = asyncio.run(copy([fast_one]))
        assert quick < link_seconds(image.size, MBIT), (quick, twice)
        # Every copy arrived whole: the registries answer for the manifest.
        for registry in (slow_a, slow_b, fast_one):

            async def has(r: Registry = registry) -> bool:
                async with RegistryClient(r.url) as client:
                    return await client.has_manifest("os", "1.0.0")

            assert asyncio.run(has())
    finally:
        for registry in registries:
            registry.stop()
