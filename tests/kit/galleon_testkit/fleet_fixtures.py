"""pytest fixture `fleet`: a `FleetHarness` on the session's control plane and kwok
nodes, with the operator running, one version published, and every ScaleSet of the
test's namespace deleted at teardown.

Loaded as a plugin by `tests/conftest.py`. A module (or a test) says which versions
its source holds and where the first one is published with the `fleet` marker:

    pytestmark = [pytest.mark.integration, pytest.mark.fleet(versions=("1.0.0", "1.0.1"))]

`versions` defaults to `FleetHarness.with_versions`' three, `publish_to` (names of the
harness' regions) to `("east", "west")`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.core.exceptions import ApiError

from galleon.kube.resources import ScaleSet
from galleon_testkit.fleets import FleetHarness
from galleon_testkit.registry import Registry
from galleon_testkit.world import World


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "fleet(versions=..., publish_to=...): what the `fleet` fixture's source holds "
        "and where its first version is published",
    )


@pytest.fixture
def fleet(
    request: pytest.FixtureRequest,
    control_plane: Any,
    kube: Client,
    namespace: str,
    registry_factory: Callable[[int], list[Registry]],
    operator: Any,
    tmp_path: Path,
) -> Iterator[FleetHarness]:
    marker = request.node.get_closest_marker("fleet")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    world = World(kube, namespace, registry_factory(4))
    versions = {"versions": options["versions"]} if "versions" in options else {}
    made = FleetHarness.with_versions(world, tmp_path, control_plane.client, **versions)
    first = next(iter(made.images))
    made.publish(first, [getattr(made, r) for r in options.get("publish_to", ("east", "west"))])
    yield made
    for s in list(kube.list(ScaleSet, namespace=namespace)):
        with contextlib.suppress(ApiError):
            kube.delete(ScaleSet, s.metadata.name, namespace=namespace)
    world.cleanup()
