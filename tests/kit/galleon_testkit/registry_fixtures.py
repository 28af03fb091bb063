"""pytest fixtures: real docker-registry instances on loopback ports.

Loaded as a plugin by `tests/conftest.py`. `registry_factory(n)` starts n
registries under the test's tmp folder and stops them at teardown. A missing
binary skips locally and fails under CI=true.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from galleon_testkit.cluster_fixtures import unavailable
from galleon_testkit.registry import MissingRegistry, Registry


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[Callable[[int], list[Registry]]]:
    started: list[Registry] = []

    def start(count: int = 1, *, access_log: bool = False) -> list[Registry]:
        batch = []
        for _ in range(count):
            registry = Registry(tmp_path / f"registry-{len(started)}", access_log=access_log)
            try:
                registry.start()
            except MissingRegistry as error:
                unavailable(str(error))
            started.append(registry)
            batch.append(registry)
        return batch

    yield start
    for registry in started:
        registry.stop()


@pytest.fixture
def registry(registry_factory: Callable[[int], list[Registry]]) -> Registry:
    return registry_factory(1)[0]
