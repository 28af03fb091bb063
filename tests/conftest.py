"""Fixtures shared by every test tier.

The control-plane, registry and operator fixtures live in the test kit
(`galleon_testkit`: the separate dev-only distribution in `tests/kit/`, installed
into .venv by hack/setup.sh) so that the local demo (`make demo`) and the
benchmarks start exactly the same pieces as the tests. `tests/kit/` holds no
tests, so pytest does not collect it.
"""

collect_ignore = ["kit"]

pytest_plugins = [
    "galleon_testkit.cluster_fixtures",
    "galleon_testkit.registry_fixtures",
    "galleon_testkit.fleet_fixtures",
]
